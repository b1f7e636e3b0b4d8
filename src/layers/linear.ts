// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout; `matMul(x, W, false, true)` reads it
// transposed (the native backend's MatMul handles transpose_b without a copy).
import * as tf from '@tensorflow/tfjs-core';

/** x [..., in] -> [..., out]. */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1];
  const lead = x.shape.slice(0, -1);
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
  let y: tf.Tensor = tf.matMul(x2, weight, false, true);
  if (bias) y = tf.add(y, bias);
  return y.reshape([...lead, weight.shape[0]]);
}
