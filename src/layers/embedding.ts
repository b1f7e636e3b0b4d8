// nn.Embedding: rows of the table, W [vocab, hidden]. A table held packed in its 16-bit checkpoint dtype
// (src/ops/packed_weight.ts) is gathered as packed rows, then only those rows are widened to float32.
import * as tf from '../tfjs.ts';
import { widenNative } from '../ops/native_kernels.ts';
import { PackedWeight, widenOps, type Weight } from '../ops/packed_weight.ts';

/** table[ids]: [ids.length, hidden] float32. */
export function embedding(table: Weight, ids: number[]): tf.Tensor2D {
  return tf.tidy(() => {
    const idx = tf.tensor1d(ids, 'int32');
    if (!(table instanceof PackedWeight)) return tf.gather(table, idx) as tf.Tensor2D;
    const rows = tf.gather(table.packed, idx); // int32 [n, hidden/2]
    return (widenNative(rows, table.dtype) ?? widenOps(rows, table.dtype)) as tf.Tensor2D;
  });
}
