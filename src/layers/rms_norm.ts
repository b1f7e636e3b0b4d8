// MiniCPM's RMSNorm (modeling_minicpm.py `rms_layernorm`):
//   var = x.float().pow(2).mean(-1, keepdim=True)
//   y = (x * torch.rsqrt(var + eps)).to(x.dtype) * weight
// In fp32 the cast is a no-op; the weight multiplies after the normalization.
// Where the project's native kernel is loaded (src/ops/native_kernels.ts) the
// same formula runs in one pass per row; these TF.js ops are the reference.
import * as tf from '../tfjs.ts';
import { normNative } from '../ops/native_kernels.ts';

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return normNative(x, weight, undefined, 'rms', eps) ?? rmsNormOps(x, weight, eps);
}

/** The same in TF.js ops. */
export function rmsNormOps(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), x.rank - 1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  });
}
