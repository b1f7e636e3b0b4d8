// Scaled dot-product attention on [B, H, T, d] tensors, and its slow oracle.
//   softmax(q kᵀ · scale + mask) v
// `scaleQueryFirst` reproduces nn.MultiheadAttention, which multiplies q by
// the scale before the product; the LLM and timm's ViT scale the scores.
import * as tf from '../tfjs.ts';
import { softmaxNative } from '../ops/native_kernels.ts';

export interface AttentionOptions {
  scale: number;
  /** Causal mask with the query block ending at the last key (KV cache aware). */
  causal?: boolean;
  scaleQueryFirst?: boolean;
  /**
   * Sees the softmax probabilities [B, H, Tq, Tk] (exactly those that weight v) and returns them or a
   * replacement: how a hook point such as `resampler.attn.weights` reads or patches them.
   */
  probs?: (p: tf.Tensor4D) => tf.Tensor4D;
}

export function scaledDotProductAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, opts: AttentionOptions,
): tf.Tensor4D {
  return tf.tidy(() => {
    const Tq = q.shape[2], Tk = k.shape[2];
    let scores: tf.Tensor = opts.scaleQueryFirst
      ? tf.matMul(tf.mul(q, opts.scale), k, false, true)
      : tf.mul(tf.matMul(q, k, false, true), opts.scale);
    if (opts.causal && Tq > 1) scores = tf.add(scores, causalMask(Tq, Tk));
    const p = (softmaxNative(scores) ?? softmaxOps(scores)) as tf.Tensor4D;
    return tf.matMul(opts.probs ? opts.probs(p) : p, v) as tf.Tensor4D;
  });
}

/** Softmax over the last dimension in TF.js ops (the reference for the native kernel). */
export function softmaxOps(scores: tf.Tensor): tf.Tensor {
  return tf.softmax(scores, -1);
}

/** [Tq, Tk] additive mask: query i (absolute position Tk - Tq + i) sees keys 0..that position. */
export function causalMask(Tq: number, Tk: number): tf.Tensor2D {
  const m = new Float32Array(Tq * Tk);
  const offset = Tk - Tq;
  // PyTorch uses torch.finfo(dtype).min; -Infinity would give NaN for fully masked rows, which cannot happen here.
  for (let i = 0; i < Tq; i++) for (let j = i + offset + 1; j < Tk; j++) m[i * Tk + j] = -3.4028234663852886e38;
  return tf.tensor2d(m, [Tq, Tk]);
}

/** Slow oracle for one head: q [Tq,d], k [Tk,d], v [Tk,dv], float64 loops. */
export function attentionSlow(
  q: Float32Array, k: Float32Array, v: Float32Array, Tq: number, Tk: number, d: number, dv: number,
  scale: number, causal: boolean,
): Float64Array {
  const out = new Float64Array(Tq * dv);
  for (let i = 0; i < Tq; i++) {
    const s = new Float64Array(Tk);
    let max = -Infinity;
    const last = causal ? Tk - Tq + i : Tk - 1;
    for (let j = 0; j <= last; j++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[i * d + c] * k[j * d + c];
      s[j] = dot * scale;
      max = Math.max(max, s[j]);
    }
    let total = 0;
    for (let j = 0; j <= last; j++) total += (s[j] = Math.exp(s[j] - max));
    for (let j = 0; j <= last; j++) for (let c = 0; c < dv; c++) out[i * dv + c] += (s[j] / total) * v[j * dv + c];
  }
  return out;
}

/**
 * [B, T, H*d] -> [B, H, T, d]. A 2-D [B*T, H*d] input (the decoder's hidden state) needs `batch` = B.
 * With one position the transpose moves nothing: a reshape is enough (decode steps).
 */
export function splitHeads(x: tf.Tensor, heads: number, batch = x.shape[0]): tf.Tensor4D {
  const D = x.shape[x.rank - 1], d = D / heads, T = x.size / (batch * D);
  if (T === 1) return x.reshape([batch, heads, 1, d]) as tf.Tensor4D;
  return x.reshape([batch, T, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
}

/** [B, H, T, d] -> [B, T, H*d], or [B*T, H*d] with `flat` (the decoder's 2-D hidden state). */
export function mergeHeads(x: tf.Tensor4D, flat = false): tf.Tensor {
  const [B, H, T, d] = x.shape;
  const shape = flat ? [B * T, H * d] : [B, T, H * d];
  return (T === 1 ? x : x.transpose([0, 2, 1, 3])).reshape(shape);
}
