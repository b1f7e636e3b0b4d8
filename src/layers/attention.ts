// Scaled dot-product attention on [B, H, T, d] tensors, and its slow oracle.
//   softmax(q kᵀ · scale + mask) v
// `scaleQueryFirst` reproduces nn.MultiheadAttention, which multiplies q by
// the scale before the product; the LLM and timm's ViT scale the scores.
import * as tf from '../tfjs.ts';
import { cachedAttentionNative, softmaxNative } from '../ops/native_kernels.ts';

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

/** Scores of at most this many bytes are formed at once: larger ones are taken a group of heads at a time. */
export const SCORES_CHUNK_BYTES = 16 << 20;

export function scaledDotProductAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, opts: AttentionOptions,
): tf.Tensor4D {
  const [B, H, Tq] = q.shape, Tk = k.shape[2];
  // Heads are independent: a group of them at a time gives the same values with a fraction of the transient
  // memory (a SigLIP block's [1, 16, 1024, 1024] scores and probabilities were 128 MiB at once). The
  // probabilities hook needs them all, so it keeps the one-pass path.
  const perHead = B * Tq * Tk * 4, group = Math.max(1, Math.floor(SCORES_CHUNK_BYTES / perHead));
  return tf.tidy(() => {
    // The causal mask is the same for every head: built once.
    const mask = opts.causal && Tq > 1 ? causalMask(Tq, Tk) : undefined;
    if (opts.probs || group >= H) return attendAll(q, k, v, mask, opts);
    const parts: tf.Tensor4D[] = [];
    for (let h0 = 0; h0 < H; h0 += group) {
      const n = Math.min(group, H - h0);
      const part = (t: tf.Tensor4D) => t.slice([0, h0, 0, 0], [-1, n, -1, -1]);
      parts.push(tf.tidy(() => attendAll(part(q), part(k), part(v), mask, opts)));
    }
    return tf.concat(parts, 1) as tf.Tensor4D;
  });
}

/** softmax(q kᵀ · scale + mask) v for all the heads given. */
function attendAll(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D | undefined, opts: AttentionOptions): tf.Tensor4D {
  return tf.tidy(() => {
    let scores: tf.Tensor = opts.scaleQueryFirst
      ? tf.matMul(tf.mul(q, opts.scale), k, false, true)
      : tf.mul(tf.matMul(q, k, false, true), opts.scale);
    if (mask) scores = tf.add(scores, mask);
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

/**
 * The decoder's causal attention over a KV cache, for B sequences (beams) of T new positions each, as one
 * step of generation runs it: the new keys and values are written into the cache, then every new query
 * attends to its sequence's keys up to its own position.
 *   q [B*T, H*d], k and v [B*T, Hkv*d] (q and k rotated); kcache, vcache [S, Hkv, C, d];
 *   idx int32 [B, P], P = past + T: idx[b][p] is the slot of the cache holding sequence b's key and value
 *   at position p (beams that share a prefix share its slots).
 * Returns y [B*T, H*d] (heads merged) and the caches holding the new keys and values: the native kernel
 * writes them in place into the tensors it was given, the TF.js ops return new ones.
 */
export function cachedAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, kcache: tf.Tensor4D, vcache: tf.Tensor4D,
  idx: tf.Tensor2D, heads: number, scale: number): { y: tf.Tensor2D; kcache: tf.Tensor4D; vcache: tf.Tensor4D } {
  const y = cachedAttentionNative(q, k, v, kcache, vcache, idx, heads, scale);
  return y ? { y, kcache, vcache } : cachedAttentionOps(q, k, v, kcache, vcache, idx, heads, scale);
}

/** cachedAttention in TF.js ops (the reference): a scatter into new caches, a gather per sequence, SDPA. */
export function cachedAttentionOps(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, kcache: tf.Tensor4D, vcache: tf.Tensor4D,
  idx: tf.Tensor2D, heads: number, scale: number): { y: tf.Tensor2D; kcache: tf.Tensor4D; vcache: tf.Tensor4D } {
  return tf.tidy(() => {
    const [B, P] = idx.shape;
    const [, Hkv, , d] = kcache.shape;
    const T = q.shape[0] / B, past = P - T;
    const slots = idx.dataSync();
    // Write: row (b, t) of k, head h -> kcache[slot, h, past + t].
    const at: number[] = [];
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < Hkv; h++) at.push(slots[b * P + past + t], h, past + t);
    const where = tf.tensor2d(at, [B * T * Hkv, 3], 'int32');
    const kc = tf.tensorScatterUpdate(kcache, where, k.reshape([B * T * Hkv, d])) as tf.Tensor4D;
    const vc = tf.tensorScatterUpdate(vcache, where, v.reshape([B * T * Hkv, d])) as tf.Tensor4D;
    // Read: sequence b's keys [B, Hkv, P, d] through its slots.
    const read: number[] = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < Hkv; h++) for (let p = 0; p < P; p++) read.push(slots[b * P + p], h, p);
    const from = tf.tensor4d(read, [B, Hkv, P, 3], 'int32');
    let K = tf.gatherND(kc, from) as tf.Tensor4D, V = tf.gatherND(vc, from) as tf.Tensor4D;
    if (heads !== Hkv) {
      // repeat_kv: each kv head serves heads/Hkv query heads.
      const expand = (t: tf.Tensor4D) => t.expandDims(2).tile([1, 1, heads / Hkv, 1, 1]).reshape([B, heads, P, d]) as tf.Tensor4D;
      K = expand(K); V = expand(V);
    }
    const o = scaledDotProductAttention(splitHeads(q, heads, B), K, V, { scale, causal: true });
    return { y: mergeHeads(o, true) as tf.Tensor2D, kcache: kc, vcache: vc };
  });
}
