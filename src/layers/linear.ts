// nn.Linear: y = x Wᵀ + b with W stored as PyTorch does, [out, in].
// The weight keeps the checkpoint layout, and its checkpoint dtype where the project's kernels are loaded:
// a bf16/f16 weight stays packed (src/ops/packed_weight.ts) and MiniCPMLinear widens it in registers, with
// fp32 products and sums, so it gives what the float32 weight gives (src/ops/native_kernels.ts). Without
// the kernels, weights are float32 and `matMul(x, W, false, true)` reads W transposed in place.
import * as tf from '../tfjs.ts';
import { linearManyNative, widenNative } from '../ops/native_kernels.ts';
import { PackedWeight, widenOps, type Weight } from '../ops/packed_weight.ts';

/**
 * x [M, in] · Wᵀ in TF.js ops (the reference, and the path for many rows): a packed weight is widened to a
 * float32 scratch first (natively where the kernel is loaded, else in JavaScript).
 */
export function linearOps(x2: tf.Tensor2D, weight: Weight): tf.Tensor2D {
  return tf.tidy(() => {
    const w = weight instanceof PackedWeight
      ? ((widenNative(weight.packed, weight.dtype) ?? widenOps(weight.packed, weight.dtype)) as tf.Tensor2D)
      : weight;
    return tf.matMul(x2, w, false, true);
  });
}

/** x [..., in] -> [..., out]. A 2-D input needs no reshape (each is a kernel call on the native backend). */
export function linear(x: tf.Tensor, weight: Weight, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    let y = linearMany(x, [weight])[0];
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

/**
 * Several nn.Linear of the same input, no bias (q, k and v; gate and up): x [..., in] -> one [..., out_j] per
 * weight. The native kernel streams all the weights in one call; the TF.js ops run one product each.
 */
export function linearMany(x: tf.Tensor, weights: Weight[]): tf.Tensor[] {
  return tf.tidy(() => {
    const x2 = (x.rank === 2 ? x : x.reshape([-1, x.shape[x.rank - 1]])) as tf.Tensor2D;
    const ys: tf.Tensor[] = linearManyNative(x2, weights) ?? weights.map((w) => linearOps(x2, w));
    return x.rank === 2 ? ys : ys.map((y, i) => y.reshape([...x.shape.slice(0, -1), weights[i].shape[0]]));
  });
}
