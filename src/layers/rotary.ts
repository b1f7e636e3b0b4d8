// Rotary position embedding, "rotate_half" layout (modeling_minicpm.py
// MiniCPMRotaryEmbedding / apply_rotary_pos_emb):
//   inv_freq[k] = 1 / theta^(2k/d), k = 0..d/2-1;  emb = cat(freqs, freqs)
//   q' = q·cos + rotate_half(q)·sin,  rotate_half(x) = cat(-x[d/2:], x[:d/2])
import * as tf from '../tfjs.ts';
import { rotaryNative } from '../ops/native_kernels.ts';

/** cos/sin tables [positions, headDim] for the given absolute positions. */
export function rotaryTables(positions: number[], headDim: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const cos = new Float32Array(positions.length * headDim);
  const sin = new Float32Array(positions.length * headDim);
  for (let k = 0; k < half; k++) {
    // PyTorch computes inv_freq in fp32: 1 / theta ** (arange(0, d, 2).float() / d)
    const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * k) / headDim)));
    positions.forEach((p, t) => {
      const f = Math.fround(p * invFreq);
      const c = Math.fround(Math.cos(f)), s = Math.fround(Math.sin(f));
      cos[t * headDim + k] = cos[t * headDim + k + half] = c;
      sin[t * headDim + k] = sin[t * headDim + k + half] = s;
    });
  }
  return { cos: tf.tensor2d(cos, [positions.length, headDim]), sin: tf.tensor2d(sin, [positions.length, headDim]) };
}

/** x [B, H, T, d]; cos/sin [T, d]. One native pass where the project's kernel is loaded. */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  return rotaryNative(x, cos, sin) ?? applyRotaryOps(x, cos, sin);
}

/**
 * The decoder's 2-D q or k: x [B*T, H*d], row b*T + t at position t; cos/sin [T, d]. Each d-wide head is
 * rotated as applyRotary does (the native kernel takes this layout as it is: no transpose).
 */
export function applyRotaryRows(x: tf.Tensor2D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
  return rotaryNative(x, cos, sin) ?? applyRotaryRowsOps(x, cos, sin);
}

/** applyRotaryRows in TF.js ops: to [B, H, T, d], applyRotaryOps, back. */
export function applyRotaryRowsOps(x: tf.Tensor2D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [T, d] = cos.shape;
    const H = x.shape[1] / d;
    const x4 = x.reshape([-1, T, H, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D; // [B, H, T, d]
    return applyRotaryOps(x4, cos, sin).transpose([0, 2, 1, 3]).reshape(x.shape) as tf.Tensor2D;
  });
}

/** The same in TF.js ops (the reference). */
export function applyRotaryOps(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const d = x.shape[3];
    const [x1, x2] = tf.split(x, [d / 2, d / 2], 3);
    const rotated = tf.concat([tf.neg(x2), x1], 3);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  });
}

/**
 * Slow oracle: one vector at one position, straight from the formula, in
 * float64 except that inv_freq and the angle are rounded to fp32 as PyTorch
 * forms them (`outer(t.float(), inv_freq)`): at position 3000 that rounding
 * alone moves cos/sin by ~1e-4.
 */
export function applyRotarySlow(x: Float32Array | number[], position: number, theta: number): Float64Array {
  const d = x.length, half = d / 2;
  const out = new Float64Array(d);
  for (let k = 0; k < half; k++) {
    // fp32 at each step, as torch: 1.0 / (base ** (arange(0, d, 2).float() / d)), then t * inv_freq.
    const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * k) / d)));
    const angle = Math.fround(position * invFreq);
    const c = Math.cos(angle), s = Math.sin(angle);
    out[k] = x[k] * c - x[k + half] * s;
    out[k + half] = x[k + half] * c + x[k] * s;
  }
  return out;
}
