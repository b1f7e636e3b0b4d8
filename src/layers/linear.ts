// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout: `matMul(x, W, false, true)` reads it
// transposed in place. A few rows (decode steps, beams) go to the project's
// own TensorFlow kernel when the backend has it (src/backend/native_ops.ts):
// the same product, streaming W at the memory bandwidth (bench/backend.ts).
import * as tf from '../tfjs.ts';
import { LINEAR_ROWS, LINEAR_ROWS_MAX } from '../backend/native_ops.ts';

function product(x2: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor {
  if (x2.shape[0] <= LINEAR_ROWS_MAX && tf.getKernel(LINEAR_ROWS, tf.getBackend()) !== undefined) {
    return tf.engine().runKernel(LINEAR_ROWS, { x: x2, w: weight }) as tf.Tensor;
  }
  return tf.matMul(x2, weight, false, true);
}

/** x [..., in] -> [..., out]. A 2-D input needs no reshape (each is a kernel call on the native backend). */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const x2 = (x.rank === 2 ? x : x.reshape([-1, x.shape[x.rank - 1]])) as tf.Tensor2D;
    let y: tf.Tensor = product(x2, weight);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
  });
}
