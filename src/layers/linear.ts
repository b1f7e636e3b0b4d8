// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout: `matMul(x, W, false, true)` reads it
// transposed in place (bench/backend.ts: the native backend runs the
// one-row decode product this way as fast as with W pre-transposed).
import * as tf from '../tfjs.ts';

/** x [..., in] -> [..., out]. A 2-D input needs no reshape (each is a kernel call on the native backend). */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const x2 = (x.rank === 2 ? x : x.reshape([-1, x.shape[x.rank - 1]])) as tf.Tensor2D;
    let y: tf.Tensor = tf.matMul(x2, weight, false, true);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
  });
}
