// A weight matrix kept in its checkpoint's 16-bit dtype. TF.js has no bf16 (or f16) dtype, so the values
// are kept exactly as the file stores them, two per int32: the logical [out, in] weight is an int32
// tensor [out, in/2] whose word j holds element 2j in its low half and 2j+1 in its high half (the file's
// little-endian byte order: reading the bytes as int32 is the packing). Widening to float32 is exact
// (bf16: the 16 bits become the high half of the float; f16: IEEE half to single), so a product that widens
// in registers (MiniCPMLinear) gives what the float32 weight gives, with half the bytes read.
import * as tf from '../tfjs.ts';
import { f16ToF32Table } from '../weights/dtype.ts';

export type PackedDtype = 'bf16' | 'f16';

export class PackedWeight {
  /** The logical shape, as PyTorch has it: [out, in]. */
  readonly shape: [number, number];

  constructor(readonly packed: tf.Tensor2D, readonly dtype: PackedDtype) {
    if (packed.dtype !== 'int32' || packed.rank !== 2) throw new Error(`PackedWeight: expects int32 [out, in/2], got ${packed.dtype} [${packed.shape}]`);
    this.shape = [packed.shape[0], packed.shape[1] * 2];
  }

  /** Bytes held: two per element. */
  get bytes(): number {
    return this.packed.size * 4;
  }

  dispose(): void {
    this.packed.dispose();
  }
}

/** A weight as the layers take it: float32 [out, in], or packed 16-bit. */
export type Weight = tf.Tensor2D | PackedWeight;

/** The logical [out, in] shape of a weight. */
export const weightShape = (w: Weight): [number, number] => [w.shape[0], w.shape[1]] as [number, number];


/** Packed 16-bit values (int32 [..., K/2]) widened to float32 [..., K] in JavaScript: the reference for MiniCPMWiden. */
export function widenOps(packed: tf.Tensor, dtype: PackedDtype): tf.Tensor {
  const words = packed.dataSync() as Int32Array;
  const halves = new Uint16Array(words.buffer, words.byteOffset, words.length * 2);
  const out = new Float32Array(halves.length);
  if (dtype === 'bf16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  } else {
    const table = f16ToF32Table();
    for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  }
  const shape = [...packed.shape];
  shape[shape.length - 1] *= 2;
  return tf.tensor(out, shape, 'float32');
}

/** A weight split into `n` equal blocks of rows (nn.MultiheadAttention's in_proj_weight.chunk(3)). */
export function splitRows(w: Weight, n: number): Weight[] {
  if (w instanceof PackedWeight) return tf.split(w.packed, n, 0).map((t) => new PackedWeight(t as tf.Tensor2D, w.dtype));
  return tf.split(w, n, 0) as tf.Tensor2D[];
}
