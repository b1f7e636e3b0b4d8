// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout. For many rows, `matMul(x, W, false,
// true)`; for a handful of rows (decode steps, beams) the product is taken as
// W · xᵀ, which the native backend runs about twice as fast for one row (its
// matrix-vector path streams W's rows contiguously); see bench/backend.ts.
import * as tf from '../tfjs.ts';

/** Rows at or below this use the W · xᵀ form. */
export const GEMV_MAX_ROWS = 4;

/** x [..., in] -> [..., out]. */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inDim = x.shape[x.shape.length - 1];
    const out = weight.shape[0];
    const lead = x.shape.slice(0, -1);
    // Each reshape is a kernel call on the native backend (~40 µs): skip the ones that change nothing.
    const x2 = (x.rank === 2 ? x : x.reshape([-1, inDim])) as tf.Tensor2D;
    const rows = x2.shape[0];
    let y: tf.Tensor;
    if (rows === 1) {
      y = tf.matMul(weight, x2, false, true); // [out, 1]: same memory order as [..., 1, out]
      if (bias) y = tf.add(y.reshape([out]), bias);
      return y.reshape([...lead, out]);
    }
    y = rows <= GEMV_MAX_ROWS ? tf.matMul(weight, x2, false, true).transpose() : tf.matMul(x2, weight, false, true);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : y.reshape([...lead, out]);
  });
}
