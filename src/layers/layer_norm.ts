// nn.LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * w + b,
// with the biased variance, as torch.nn.functional.layer_norm.
// Where the project's native kernel is loaded (src/ops/native_kernels.ts) the
// same formula runs in one pass per row; these TF.js ops are the reference.
import * as tf from '../tfjs.ts';
import { normNative } from '../ops/native_kernels.ts';

export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  return normNative(x, weight, bias, 'layer', eps) ?? layerNormOps(x, weight, bias, eps);
}

/** The same in TF.js ops. */
export function layerNormOps(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), axis, true);
    return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), weight), bias);
  });
}
