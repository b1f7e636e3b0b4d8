// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout: `matMul(x, W, false, true)` reads it
// transposed in place. A few rows (decode steps, beams) go to the project's
// own kernel where the backend has it (src/ops/native_kernels.ts): the same
// product, streaming W at the memory bandwidth (bench/backend.ts).
import * as tf from '../tfjs.ts';
import { linearRowsNative } from '../ops/native_kernels.ts';

/** x [R, in] · Wᵀ in TF.js ops (the reference). */
export function linearOps(x2: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(x2, weight, false, true);
}

/** x [..., in] -> [..., out]. A 2-D input needs no reshape (each is a kernel call on the native backend). */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const x2 = (x.rank === 2 ? x : x.reshape([-1, x.shape[x.rank - 1]])) as tf.Tensor2D;
    let y: tf.Tensor = linearRowsNative(x2, weight) ?? linearOps(x2, weight);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
  });
}
