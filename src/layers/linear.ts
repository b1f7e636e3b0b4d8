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
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
    const rows = x2.shape[0];
    let y: tf.Tensor =
      rows <= GEMV_MAX_ROWS
        ? rows === 1
          ? tf.matMul(weight, x2, false, true).reshape([1, weight.shape[0]]) // [out, 1] -> [1, out], same memory order
          : tf.matMul(weight, x2, false, true).transpose()
        : tf.matMul(x2, weight, false, true);
    if (bias) y = tf.add(y, bias);
    return y.reshape([...lead, weight.shape[0]]);
  });
}
