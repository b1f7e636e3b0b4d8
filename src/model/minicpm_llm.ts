// `llm`: MiniCPM-2.4B (modeling_minicpm.py, OpenBMB/MiniCPM@5977a63, eager
// attention path). Per layer, pre-norm with scaled residual branches:
//   h = h + self_attn(input_layernorm(h)) * scale_depth/sqrt(L)
//   h = h + mlp(post_attention_layernorm(h)) * scale_depth/sqrt(L)
// then norm, and logits = lm_head(h / (hidden / dim_model_base)), lm_head untied.
import * as tf from '../tfjs.ts';
import type { LlmConfig } from '../config.ts';
import { cachedAttention, mergeHeads, scaledDotProductAttention, splitHeads } from '../layers/attention.ts';
import { embedding } from '../layers/embedding.ts';
import { linear, linearMany } from '../layers/linear.ts';
import { swigluMlp } from '../layers/mlp.ts';
import { rmsNorm } from '../layers/rms_norm.ts';
import { applyRotaryRows, rotaryTables } from '../layers/rotary.ts';
import { ShapeError } from '../errors.ts';
import { KV_GROW, decoderLayerNative, hasKernel, kvGrowNative } from '../ops/native_kernels.ts';
import { Hooks, LLM_LAYER_HOOKS } from './hooks.ts';
import type { ParamStore, Scope } from './params.ts';

/** Positions a cache grows by when it is full: growing copies every layer's cache once. */
export const KV_CHUNK = 128;

/** The most positions a cache reserves up front (the model's max_position_embeddings, capped here). */
export const KV_RESERVE_MAX = 16384;

/**
 * Keys and values of every layer so far, for one sequence or for beams. Owned by the caller.
 *
 * Per layer, keys and values are preallocated float32 tensors [slots, Hkv, capacity, d], and the attention
 * kernel writes each step's keys/values into them in place (the TF.js reference returns new tensors, which
 * replace the old). With the native kernels the first allocation reserves `reserve` positions (the model's
 * max_position_embeddings): mapped memory that takes none until written, so a generation up to that length
 * never grows the cache (a grow copies every layer's cache: at 1000 positions 0.75 GB into fresh pages, a
 * stall of seconds on a machine that faults pages slowly). Past the reservation, and on the TF.js path
 * (which allocates what it asks for), the capacity grows in chunks of KV_CHUNK positions.
 * A table says where each sequence's entries are: table[b][p] is the slot holding sequence b's key and value
 * at position p. At each step sequence b writes position p into slot b; a beam reorder only permutes the
 * table's rows, so nothing is copied and beams that share a prefix share its entries (the prompt is stored
 * once, in slot 0). With the native kernels the storage is mapped memory of which only the positions a slot
 * holds are ever written (MiniCPMKVGrow), so the unused parts of slots 1.. (the prompt's positions of every
 * beam but the first) take no memory.
 */
export class KVCache {
  /** Filled positions. */
  length = 0;
  readonly k: (tf.Tensor4D | null)[];
  readonly v: (tf.Tensor4D | null)[];
  private slots = 0;
  private capacity = 0;
  /** Sequences (rows of the table). */
  private sequences = 1;
  /** [sequences][capacity] slot per position. */
  private table: Int32Array[] = [new Int32Array(0)];
  /** Per slot, the positions [lo, hi) written into it. */
  private written: [number, number][] = [];

  constructor(numLayers: number, private readonly kvHeads: number, private readonly headDim: number, private readonly minSlots = 1,
    private readonly reserve = 0) {
    this.k = new Array(numLayers).fill(null);
    this.v = new Array(numLayers).fill(null);
  }

  /** Bytes of the positions written (keys and values, every layer and slot): the memory the cache holds. */
  bytes(): number {
    const positions = this.written.reduce((n, [lo, hi]) => n + hi - lo, 0);
    return 2 * this.k.length * positions * this.kvHeads * this.headDim * 4;
  }

  /** Bytes the cache tensors span ([slots, Hkv, capacity, d] per layer, keys and values): reserved, not held. */
  spanBytes(): number {
    return 2 * this.k.length * this.slots * this.kvHeads * this.capacity * this.headDim * 4;
  }

  /** Positions each slot has room for before the next grow. */
  get room(): number {
    return this.capacity;
  }

  /**
   * Room for T more positions of B sequences (tensors grown in chunks when needed); records that sequence b
   * writes positions length..length+T-1 into slot b. Returns the table for this step: int32 [B, length + T].
   */
  prepare(B: number, T: number): tf.Tensor2D {
    if (B !== this.sequences) throw new ShapeError(`KV cache: holds ${this.sequences} sequence(s), got a batch of ${B}`);
    const P = this.length + T;
    if (P > this.capacity || B > this.slots) this.grow(Math.max(B, this.slots, this.minSlots), Math.max(this.capacity, P));
    for (let b = 0; b < B; b++) {
      this.table[b].fill(b, this.length, P);
      this.written[b] = [this.written[b]?.[0] ?? this.length, P]; // each step extends a slot's range
    }
    const idx = new Int32Array(B * P);
    for (let b = 0; b < B; b++) idx.set(this.table[b].subarray(0, P), b * P);
    return tf.tensor2d(idx, [B, P], 'int32');
  }

  /** The caches after a step wrote into them (the TF.js path gives new tensors; the native one the same). */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): void {
    for (const [list, t] of [[this.k, k], [this.v, v]] as const) {
      const old = list[layer];
      if (old !== t) {
        list[layer] = tf.keep(t);
        old?.dispose();
      }
    }
  }

  /** `n` sequences continuing this one (beam search after the prompt): each starts from sequence 0's entries. */
  expand(n: number): void {
    if (this.sequences !== 1) throw new ShapeError(`KV cache: expand needs one sequence, has ${this.sequences}`);
    this.table = Array.from({ length: n }, () => Int32Array.from(this.table[0]));
    this.sequences = n;
  }

  /** Reorders sequences: sequence i continues the entries of sequence rows[i]. Permutes the table only. */
  select(rows: number[]): void {
    if (rows.length !== this.sequences || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= this.sequences)) {
      throw new ShapeError(`KV cache: select needs ${this.sequences} rows in [0, ${this.sequences}), got [${rows}]`);
    }
    this.table = rows.map((r) => Int32Array.from(this.table[r]));
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null); this.v.fill(null);
    this.length = 0;
    this.slots = this.capacity = 0;
    this.written = [];
  }

  /**
   * New tensors [slots, Hkv, capacity, d] holding the old entries (zeros elsewhere), layer by layer; the capacity
   * is the first multiple of KV_CHUNK above `need`, or the reservation where the native kernels map the memory.
   */
  private grow(slots: number, need: number): void {
    const chunked = (Math.floor(need / KV_CHUNK) + 1) * KV_CHUNK;
    const capacity = hasKernel(KV_GROW) ? Math.max(chunked, Math.ceil(this.reserve / KV_CHUNK) * KV_CHUNK) : chunked;
    const ranges = Array.from({ length: this.slots }, (_, s) => this.written[s] ?? [0, 0]);
    for (const list of [this.k, this.v]) {
      list.forEach((old, i) => {
        list[i] = kvGrowNative(old ?? undefined, ranges, slots, capacity, this.kvHeads, this.headDim) ?? tf.tidy(() => (old
          ? tf.pad(old, [[0, slots - this.slots], [0, 0], [0, capacity - this.capacity], [0, 0]])
          : tf.fill([slots, this.kvHeads, capacity, this.headDim], 0)) as tf.Tensor4D);
        old?.dispose();
        tf.keep(list[i]!);
      });
    }
    this.table = this.table.map((row) => {
      const t = new Int32Array(capacity);
      t.set(row.subarray(0, Math.min(row.length, capacity)));
      return t;
    });
    this.slots = slots;
    this.capacity = capacity;
  }
}

export type LogitsMode = 'all' | 'last' | 'none';

export class MiniCPMLlm {
  private readonly p: Scope;

  constructor(store: ParamStore, readonly cfg: LlmConfig) {
    this.p = store.scope('llm');
  }

  /** embed_tokens(ids) * scale_emb: [1, T, D]. */
  embed(ids: number[]): tf.Tensor3D {
    return tf.tidy(() => tf.mul(embedding(this.p.weight('model.embed_tokens.weight'), ids), this.cfg.scaleEmb).expandDims(0) as tf.Tensor3D);
  }

  /**
   * An empty cache; `slots` sequences' worth of room from the start (beam search: the beam count), and
   * `reserve` positions reserved without memory (default: max_position_embeddings, at most KV_RESERVE_MAX).
   */
  newCache(opts: { slots?: number; reserve?: number } = {}): KVCache {
    const reserve = opts.reserve ?? Math.min(this.cfg.maxPositions, KV_RESERVE_MAX);
    if (!Number.isInteger(reserve) || reserve < 0 || reserve > KV_RESERVE_MAX) {
      throw new ShapeError(`KV cache: reserve must be an integer in [0, ${KV_RESERVE_MAX}], got ${reserve}`);
    }
    return new KVCache(this.cfg.numLayers, this.cfg.numKvHeads, this.cfg.headDim, opts.slots ?? 1, reserve);
  }

  /**
   * Runs the decoder over `inputsEmbeds` [B, T, D] starting at position
   * `cache.length` (0 without a cache). Appends to the cache when given.
   * Returns logits [B, T, V] ('all'), [B, 1, V] ('last') or the final hidden
   * states [B, T, D] ('none').
   */
  forward(inputsEmbeds: tf.Tensor3D, opts: { cache?: KVCache; logits?: LogitsMode; hooks?: Hooks } = {}): tf.Tensor3D {
    const { cache, logits = 'all', hooks = Hooks.none() } = opts;
    const cfg = this.cfg;
    const [B, T, D] = inputsEmbeds.shape;
    if (inputsEmbeds.rank !== 3 || D !== cfg.hidden) {
      throw new ShapeError(`llm: expected inputs_embeds [B, T, ${cfg.hidden}], got [${inputsEmbeds.shape}]`);
    }
    const past = cache?.length ?? 0;
    // The hidden state runs as a 2-D [B*T, D] matrix, so the linear layers need no reshapes (each one is a
    // kernel call on the native backend); a hook sees PyTorch's [B, T, D], reshaped only when it is active.
    const hook = (key: string, h: tf.Tensor2D): tf.Tensor2D =>
      hooks.active(key) ? (hooks.emit(key, h.reshape([B, T, D])).reshape([B * T, D]) as tf.Tensor2D) : h;
    const out = tf.tidy(() => {
      const positions = Array.from({ length: T }, (_, i) => past + i);
      const { cos, sin } = rotaryTables(positions, cfg.headDim, cfg.ropeTheta); // [T, headDim] each
      const idx = cache?.prepare(B, T); // int32 [B, past + T]: where each sequence's keys/values are
      const rs = tf.scalar(cfg.residualScale); // one scalar for every layer (tf.mul with a number uploads one per call)
      let h = hooks.emit('inputs_embeds', inputsEmbeds).reshape([B * T, D]) as tf.Tensor2D;
      const heads = cfg.numHeads, scale = 1 / Math.sqrt(cfg.headDim);
      for (let i = 0; i < cfg.numLayers; i++) {
        const l = this.p.scope('model.layers').scope(i), name = `llm.model.layers.${i}`;
        // With the native kernels, a cache and no hook on this layer, the whole layer is one call (the same
        // kernels in the same order: the same bits as the layer-by-layer path below).
        const fused = cache && !LLM_LAYER_HOOKS.some((s) => hooks.active(name + s)) && decoderLayerNative({
          h, ln1: l.get('input_layernorm.weight') as tf.Tensor1D, ln2: l.get('post_attention_layernorm.weight') as tf.Tensor1D,
          wq: l.weight('self_attn.q_proj.weight'), wk: l.weight('self_attn.k_proj.weight'), wv: l.weight('self_attn.v_proj.weight'),
          wo: l.weight('self_attn.o_proj.weight'), wg: l.weight('mlp.gate_proj.weight'), wu: l.weight('mlp.up_proj.weight'),
          wd: l.weight('mlp.down_proj.weight'), cos, sin, kcache: cache.k[i]!, vcache: cache.v[i]!, idx: idx!,
        }, { eps: cfg.rmsEps, heads, scale, residual: cfg.residualScale });
        if (fused) {
          h = fused;
          continue;
        }
        h = tf.tidy(() => {
          const x1 = hook(`${name}.input_layernorm`, rmsNorm(h, l.get('input_layernorm.weight'), cfg.rmsEps) as tf.Tensor2D);
          const attn = hook(`${name}.self_attn`, this.attention(l, i, x1, B, cos, sin, cache && { cache, idx: idx! }));
          const h1 = tf.add(h, tf.mul(attn, rs)) as tf.Tensor2D;
          const x2 = hook(`${name}.post_attention_layernorm`,
            rmsNorm(h1, l.get('post_attention_layernorm.weight'), cfg.rmsEps) as tf.Tensor2D);
          const mlp = hook(`${name}.mlp`,
            swigluMlp(x2, l.weight('mlp.gate_proj.weight'), l.weight('mlp.up_proj.weight'), l.weight('mlp.down_proj.weight')) as tf.Tensor2D);
          return hook(name, tf.add(h1, tf.mul(mlp, rs)) as tf.Tensor2D);
        });
      }
      const normed = hook('llm.model.norm', rmsNorm(h, this.p.get('model.norm.weight'), cfg.rmsEps) as tf.Tensor2D); // [B*T, D]
      if (logits === 'none') return normed.reshape([B, T, D]) as tf.Tensor3D;
      // 'last': the last position of every sequence, [B, D]; 'all': every row, [B*T, D].
      const rows = logits === 'last' && T > 1 ? tf.gather(normed, tf.range(T - 1, B * T, T, 'int32')) : normed;
      // subtle: the hidden state is divided by hidden/dim_model_base BEFORE lm_head.
      const out = linear(tf.div(rows, cfg.logitDivisor), this.p.weight('lm_head.weight')); // [rows, V]
      return logits === 'all'
        ? hooks.emit('logits', out.reshape([B, T, -1]) as tf.Tensor3D)
        : (out.reshape([B, 1, -1]) as tf.Tensor3D);
    });
    if (cache) cache.length = past + T;
    return out;
  }

  /** x [B*T, D] -> o_proj output [B*T, D]; cos/sin [T, headDim]. */
  private attention(l: Scope, layer: number, x: tf.Tensor2D, B: number, cos: tf.Tensor2D, sin: tf.Tensor2D,
    kv?: { cache: KVCache; idx: tf.Tensor2D }): tf.Tensor2D {
    const { numHeads, numKvHeads, headDim } = this.cfg;
    const scale = 1 / Math.sqrt(headDim);
    const [q0, k0, v] = linearMany(x, ['q_proj', 'k_proj', 'v_proj'].map((n) => l.weight(`self_attn.${n}.weight`))) as tf.Tensor2D[];
    const q = applyRotaryRows(q0, cos, sin); // [B*T, H*d]
    const k = applyRotaryRows(k0, cos, sin); // [B*T, Hkv*d]
    let o: tf.Tensor2D; // [B*T, H*d]
    if (kv) {
      // Appends this step's keys/values to the cache, then attends over everything so far (causal).
      const r = cachedAttention(q, k, v, kv.cache.k[layer]!, kv.cache.v[layer]!, kv.idx, numHeads, scale);
      kv.cache.update(layer, r.kcache, r.vcache);
      o = r.y;
    } else {
      let k4 = splitHeads(k, numKvHeads, B), v4 = splitHeads(v, numKvHeads, B); // [B, Hkv, T, d]
      if (numKvHeads !== numHeads) {
        // repeat_kv: each kv head serves numHeads/numKvHeads query heads.
        const rep = numHeads / numKvHeads, Tk = k4.shape[2];
        const expand = (t: tf.Tensor4D) =>
          t.expandDims(2).tile([1, 1, rep, 1, 1]).reshape([B, numHeads, Tk, headDim]) as tf.Tensor4D;
        k4 = expand(k4); v4 = expand(v4);
      }
      // Eager path: (q kᵀ)/sqrt(d) + causal mask, softmax in fp32, then · v.
      o = mergeHeads(scaledDotProductAttention(splitHeads(q, numHeads, B), k4, v4, { scale, causal: true }), true) as tf.Tensor2D;
    }
    return linear(o, l.weight('self_attn.o_proj.weight')) as tf.Tensor2D; // [B*T, D]
  }
}
