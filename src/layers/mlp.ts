// The two MLPs of the model.
import * as tf from '../tfjs.ts';
import { linear, linearMany } from './linear.ts';
import { biasGeluNative, swigluNative } from '../ops/native_kernels.ts';
import type { Weight } from '../ops/packed_weight.ts';

/** Exact (erf) GELU, nn.GELU(approximate='none'): 0.5·x·(1 + erf(x/√2)). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/** gelu(x + b) in TF.js ops (the reference for the native bias+GELU kernel). */
export function biasGeluOps(x: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => geluErf(tf.add(x, b)));
}

/**
 * timm Mlp: fc2(gelu(fc1(x))). fc1's bias and the GELU run as one native pass
 * where the project's kernel is loaded (src/ops/native_kernels.ts).
 */
export function vitMlp(
  x: tf.Tensor, fc1: { weight: Weight; bias: tf.Tensor1D }, fc2: { weight: Weight; bias: tf.Tensor1D },
): tf.Tensor {
  return tf.tidy(() => {
    const pre = linear(x, fc1.weight);
    const h = biasGeluNative(pre, fc1.bias) ?? biasGeluOps(pre, fc1.bias);
    return linear(h, fc2.weight, fc2.bias);
  });
}

/** silu(g) * u in TF.js ops (the reference for the native SwiGLU kernel). */
export function swigluOps(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(g, tf.sigmoid(g)), u));
}

/** MiniCPM MLP: down(silu(gate(x)) * up(x)). gate and up read x in one pass. */
export function swigluMlp(x: tf.Tensor, gate: Weight, up: Weight, down: Weight): tf.Tensor {
  return tf.tidy(() => {
    const [g, u] = linearMany(x, [gate, up]);
    return linear(swigluNative(g, u) ?? swigluOps(g, u), down);
  });
}
