// `llm`: MiniCPM-2.4B (modeling_minicpm.py, OpenBMB/MiniCPM@5977a63, eager
// attention path). Per layer, pre-norm with scaled residual branches:
//   h = h + self_attn(input_layernorm(h)) * scale_depth/sqrt(L)
//   h = h + mlp(post_attention_layernorm(h)) * scale_depth/sqrt(L)
// then norm, and logits = lm_head(h / (hidden / dim_model_base)), lm_head untied.
import * as tf from '../tfjs.ts';
import type { LlmConfig } from '../config.ts';
import { mergeHeads, scaledDotProductAttention, splitHeads } from '../layers/attention.ts';
import { linear } from '../layers/linear.ts';
import { swigluMlp } from '../layers/mlp.ts';
import { rmsNorm } from '../layers/rms_norm.ts';
import { applyRotary, rotaryTables } from '../layers/rotary.ts';
import { ShapeError } from '../errors.ts';
import { Hooks } from './hooks.ts';
import type { ParamStore, Scope } from './params.ts';

/** Keys and values of every layer so far, [1, numKvHeads, T, headDim] each. Owned by the caller. */
export class KVCache {
  readonly k: (tf.Tensor4D | null)[];
  readonly v: (tf.Tensor4D | null)[];
  length = 0;
  constructor(numLayers: number) {
    this.k = new Array(numLayers).fill(null);
    this.v = new Array(numLayers).fill(null);
  }

  /** Appends this step's k/v for a layer and returns the full k/v (kept alive by the cache). */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const oldK = this.k[layer], oldV = this.v[layer];
    const newK = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone()) as tf.Tensor4D;
    const newV = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone()) as tf.Tensor4D;
    oldK?.dispose(); oldV?.dispose();
    this.k[layer] = newK; this.v[layer] = newV;
    return [newK, newV];
  }

  /** A cache holding the same keys/values for several beams: [n, H, T, d] each. */
  tile(n: number): KVCache {
    const c = new KVCache(this.k.length);
    c.length = this.length;
    for (let i = 0; i < this.k.length; i++) {
      c.k[i] = tf.keep(tf.tile(this.k[i]!, [n, 1, 1, 1]));
      c.v[i] = tf.keep(tf.tile(this.v[i]!, [n, 1, 1, 1]));
    }
    return c;
  }

  /** Reorders beams: row i of the result is row `rows[i]` of this cache. In place. */
  select(rows: number[]): void {
    const idx = tf.tensor1d(rows, 'int32');
    for (let i = 0; i < this.k.length; i++) {
      const k = this.k[i]!, v = this.v[i]!;
      this.k[i] = tf.keep(tf.gather(k, idx, 0));
      this.v[i] = tf.keep(tf.gather(v, idx, 0));
      k.dispose(); v.dispose();
    }
    idx.dispose();
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null); this.v.fill(null);
    this.length = 0;
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
    return tf.tidy(() => {
      const table = this.p.get<tf.Tensor2D>('model.embed_tokens.weight');
      const idx = tf.tensor1d(ids, 'int32');
      return tf.mul(tf.gather(table, idx), this.cfg.scaleEmb).expandDims(0) as tf.Tensor3D;
    });
  }

  newCache(): KVCache {
    return new KVCache(this.cfg.numLayers);
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
      let h = hooks.emit('inputs_embeds', inputsEmbeds).reshape([B * T, D]) as tf.Tensor2D;
      for (let i = 0; i < cfg.numLayers; i++) {
        const l = this.p.scope('model.layers').scope(i), name = `llm.model.layers.${i}`;
        h = tf.tidy(() => {
          const x1 = hook(`${name}.input_layernorm`, rmsNorm(h, l.get('input_layernorm.weight'), cfg.rmsEps) as tf.Tensor2D);
          const attn = hook(`${name}.self_attn`, this.attention(l, i, x1, B, cos, sin, cache));
          const h1 = tf.add(h, tf.mul(attn, cfg.residualScale)) as tf.Tensor2D;
          const x2 = hook(`${name}.post_attention_layernorm`,
            rmsNorm(h1, l.get('post_attention_layernorm.weight'), cfg.rmsEps) as tf.Tensor2D);
          const mlp = hook(`${name}.mlp`,
            swigluMlp(x2, l.get('mlp.gate_proj.weight'), l.get('mlp.up_proj.weight'), l.get('mlp.down_proj.weight')) as tf.Tensor2D);
          return hook(name, tf.add(h1, tf.mul(mlp, cfg.residualScale)) as tf.Tensor2D);
        });
      }
      const normed = hook('llm.model.norm', rmsNorm(h, this.p.get('model.norm.weight'), cfg.rmsEps) as tf.Tensor2D); // [B*T, D]
      if (logits === 'none') return normed.reshape([B, T, D]) as tf.Tensor3D;
      // 'last': the last position of every sequence, [B, D]; 'all': every row, [B*T, D].
      const rows = logits === 'last' && T > 1 ? tf.gather(normed, tf.range(T - 1, B * T, T, 'int32')) : normed;
      // subtle: the hidden state is divided by hidden/dim_model_base BEFORE lm_head.
      const out = linear(tf.div(rows, cfg.logitDivisor), this.p.get('lm_head.weight')); // [rows, V]
      return logits === 'all'
        ? hooks.emit('logits', out.reshape([B, T, -1]) as tf.Tensor3D)
        : (out.reshape([B, 1, -1]) as tf.Tensor3D);
    });
    if (cache) cache.length = past + T;
    return out;
  }

  /** x [B*T, D] -> o_proj output [B*T, D]; cos/sin [T, headDim]. */
  private attention(l: Scope, layer: number, x: tf.Tensor2D, B: number, cos: tf.Tensor2D, sin: tf.Tensor2D,
    cache?: KVCache): tf.Tensor2D {
    const { numHeads, numKvHeads, headDim } = this.cfg;
    const q = applyRotary(splitHeads(linear(x, l.get('self_attn.q_proj.weight')), numHeads, B), cos, sin); // [B, H, T, d]
    let k = applyRotary(splitHeads(linear(x, l.get('self_attn.k_proj.weight')), numKvHeads, B), cos, sin); // [B, Hkv, T, d]
    let v = splitHeads(linear(x, l.get('self_attn.v_proj.weight')), numKvHeads, B);
    if (cache) [k, v] = cache.append(layer, k, v); // [B, Hkv, past+T, d]
    if (numKvHeads !== numHeads) {
      // repeat_kv: each kv head serves numHeads/numKvHeads query heads.
      const rep = numHeads / numKvHeads;
      const Tk = k.shape[2];
      const expand = (t: tf.Tensor4D) =>
        t.expandDims(2).tile([1, 1, rep, 1, 1]).reshape([B, numHeads, Tk, headDim]) as tf.Tensor4D;
      k = expand(k); v = expand(v);
    }
    // Eager path: (q kᵀ)/sqrt(d) + causal mask, softmax in fp32, then · v.
    const o = scaledDotProductAttention(q, k, v, { scale: 1 / Math.sqrt(headDim), causal: true });
    return linear(mergeHeads(o, true), l.get('self_attn.o_proj.weight')) as tf.Tensor2D; // [B*T, D]
  }
}
