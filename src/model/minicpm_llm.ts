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
    const newK = oldK ? (tf.concat([oldK, k], 2) as tf.Tensor4D) : (tf.keep(k.clone()) as tf.Tensor4D);
    const newV = oldV ? (tf.concat([oldV, v], 2) as tf.Tensor4D) : (tf.keep(v.clone()) as tf.Tensor4D);
    tf.keep(newK); tf.keep(newV);
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
    const { hidden: D, intermediate: I, vocab: V, numKvHeads, headDim } = cfg;
    this.p.get('model.embed_tokens.weight', [V, D]);
    this.p.get('lm_head.weight', [V, D]);
    for (let i = 0; i < cfg.numLayers; i++) {
      const l = this.p.scope('model.layers').scope(i);
      l.get('self_attn.q_proj.weight', [cfg.numHeads * headDim, D]);
      l.get('self_attn.k_proj.weight', [numKvHeads * headDim, D]);
      l.get('mlp.gate_proj.weight', [I, D]);
      l.get('mlp.down_proj.weight', [D, I]);
    }
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
   * states ('none').
   */
  forward(inputsEmbeds: tf.Tensor3D, opts: { cache?: KVCache; logits?: LogitsMode; hooks?: Hooks } = {}): tf.Tensor3D {
    const { cache, logits = 'all', hooks = Hooks.none() } = opts;
    const cfg = this.cfg;
    const past = cache?.length ?? 0;
    const [, T] = inputsEmbeds.shape;
    const out = tf.tidy(() => {
      const positions = Array.from({ length: T }, (_, i) => past + i);
      const { cos, sin } = rotaryTables(positions, cfg.headDim, cfg.ropeTheta);
      let h = hooks.emit('inputs_embeds', inputsEmbeds);
      for (let i = 0; i < cfg.numLayers; i++) {
        const l = this.p.scope('model.layers').scope(i), name = `llm.model.layers.${i}`;
        h = tf.tidy(() => {
          const x1 = hooks.emit(`${name}.input_layernorm`, rmsNorm(h, l.get('input_layernorm.weight'), cfg.rmsEps));
          const attn = hooks.emit(`${name}.self_attn`, this.attention(l, i, x1, cos, sin, cache));
          const h1 = tf.add(h, tf.mul(attn, cfg.residualScale));
          const x2 = hooks.emit(`${name}.post_attention_layernorm`,
            rmsNorm(h1, l.get('post_attention_layernorm.weight'), cfg.rmsEps));
          const mlp = hooks.emit(`${name}.mlp`,
            swigluMlp(x2, l.get('mlp.gate_proj.weight'), l.get('mlp.up_proj.weight'), l.get('mlp.down_proj.weight')));
          return hooks.emit(name, tf.add(h1, tf.mul(mlp, cfg.residualScale)) as tf.Tensor3D);
        });
      }
      let normed = hooks.emit('llm.model.norm', rmsNorm(h, this.p.get('model.norm.weight'), cfg.rmsEps) as tf.Tensor3D);
      if (logits === 'none') return normed;
      if (logits === 'last') normed = normed.slice([0, T - 1, 0], [-1, 1, -1]);
      // subtle: the hidden state is divided by hidden/dim_model_base BEFORE lm_head.
      const out = linear(tf.div(normed, cfg.logitDivisor), this.p.get('lm_head.weight')) as tf.Tensor3D;
      return logits === 'all' ? hooks.emit('logits', out) : out;
    });
    if (cache) cache.length = past + T;
    return out;
  }

  private attention(l: Scope, layer: number, x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, cache?: KVCache): tf.Tensor {
    const { numHeads, numKvHeads, headDim } = this.cfg;
    const q = applyRotary(splitHeads(linear(x, l.get('self_attn.q_proj.weight')), numHeads), cos, sin);
    let k = applyRotary(splitHeads(linear(x, l.get('self_attn.k_proj.weight')), numKvHeads), cos, sin);
    let v = splitHeads(linear(x, l.get('self_attn.v_proj.weight')), numKvHeads);
    if (cache) [k, v] = cache.append(layer, k, v);
    if (numKvHeads !== numHeads) {
      // repeat_kv: each kv head serves numHeads/numKvHeads query heads.
      const rep = numHeads / numKvHeads;
      const [B, , Tk] = k.shape;
      const expand = (t: tf.Tensor4D) =>
        t.expandDims(2).tile([1, 1, rep, 1, 1]).reshape([B, numHeads, Tk, headDim]) as tf.Tensor4D;
      k = expand(k); v = expand(v);
    }
    // Eager path: (q kᵀ)/sqrt(d) + causal mask, softmax in fp32, then · v.
    const o = scaledDotProductAttention(q, k, v, { scale: 1 / Math.sqrt(headDim), causal: true });
    return linear(mergeHeads(o), l.get('self_attn.o_proj.weight'));
  }
}
