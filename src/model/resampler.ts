// The v1 resampler (resampler.py, Qwen-VL style; not 2.0's adaptive one):
// 64 learned queries cross-attend to the projected vision features.
//   pos_k = bicubic(pos_embed 8x8 -> sqrt(L) x sqrt(L))   (plain, a = -0.75)
//   x = ln_kv(kv_proj(x))
//   q = ln_q(query)
//   out = MHA(q + pos_embed, x + pos_k, x)                (value has no pos)
//   y = ln_post(out) @ proj                               (proj is a raw [in, out] matrix)
import * as tf from '../tfjs.ts';
import type { ResamplerConfig } from '../config.ts';
import { mergeHeads, scaledDotProductAttention, splitHeads } from '../layers/attention.ts';
import { layerNorm } from '../layers/layer_norm.ts';
import { linear } from '../layers/linear.ts';
import { resizeBicubic } from '../ops/bicubic.ts';
import { splitRows } from '../ops/packed_weight.ts';
import { ShapeError } from '../errors.ts';
import { Hooks } from './hooks.ts';
import type { ParamStore, Scope } from './params.ts';

export class Resampler {
  private readonly p: Scope;
  private readonly posCache = new Map<number, tf.Tensor2D>();

  constructor(store: ParamStore, readonly cfg: ResamplerConfig) {
    this.p = store.scope('resampler');
  }

  /** Key position table [L, D] (resampler.py `get_abs_pos`); cached, owned here. */
  keyPosFor(L: number): tf.Tensor2D {
    let pos = this.posCache.get(L);
    if (!pos) {
      const src = this.cfg.gridSize, tgt = Math.floor(Math.sqrt(L)), D = this.cfg.embedDim;
      if (tgt * tgt !== L) throw new ShapeError(`resampler: ${L} vision tokens do not form a square grid`);
      const table = this.p.get<tf.Tensor2D>('pos_embed');
      pos = tf.tidy(() =>
        src === tgt ? table.clone() : (resizeBicubic(table.reshape([src, src, D]), tgt, tgt, 'plain').reshape([L, D]) as tf.Tensor2D),
      );
      this.posCache.set(L, tf.keep(pos)); // kept: created inside the caller's tidy
    }
    return pos;
  }

  /** x [1, L, kvDim] -> [1, numQueries, D]. */
  forward(x: tf.Tensor3D, hooks: Hooks = Hooks.none()): tf.Tensor3D {
    const { embedDim: D, numHeads, eps } = this.cfg;
    const p = this.p;
    const [B, L, Dkv] = x.shape;
    if (x.rank !== 3 || B !== 1 || Dkv !== this.cfg.kvDim) {
      throw new ShapeError(`resampler: expected [1, L, ${this.cfg.kvDim}] (one image at a time), got [${x.shape}]`);
    }
    return tf.tidy(() => {
      const posK = this.keyPosFor(L);
      const kv = hooks.emit('resampler.ln_kv', layerNorm(
        hooks.emit('resampler.kv_proj', this.cfg.kvDim === D ? x : linear(x, p.weight('kv_proj.weight'))),
        p.get('ln_kv.weight'), p.get('ln_kv.bias'), eps,
      )).reshape([L, D]);
      const q = hooks.emit('resampler.ln_q', layerNorm(p.get('query'), p.get('ln_q.weight'), p.get('ln_q.bias'), eps));

      // nn.MultiheadAttention with key != value: three projections from in_proj_weight.chunk(3).
      const [wq, wk, wv] = splitRows(p.weight('attn.in_proj_weight'), 3);
      const [bq, bk, bv] = tf.split(p.get<tf.Tensor1D>('attn.in_proj_bias'), 3, 0) as tf.Tensor1D[];
      const Qp = linear(tf.add(q, p.get('pos_embed')), wq, bq).expandDims(0); // [1, Q, D]
      const Kp = linear(tf.add(kv, posK), wk, bk).expandDims(0); // [1, L, D]
      const Vp = linear(kv, wv, bv).expandDims(0); // [1, L, D]
      const headDim = D / numHeads;
      // subtle: MHA scales q by 1/sqrt(head_dim) BEFORE q kᵀ (need_weights=True path).
      // `resampler.attn.weights`: the softmax probabilities per head, [1, heads, Q, L] (MHA's second output
      // with average_attn_weights=False); only built into a hook call when selected.
      const probs = hooks.active('resampler.attn.weights')
        ? (w: tf.Tensor4D) => hooks.emit('resampler.attn.weights', w) : undefined;
      const o = mergeHeads(scaledDotProductAttention(splitHeads(Qp, numHeads), splitHeads(Kp, numHeads),
        splitHeads(Vp, numHeads), { scale: Math.sqrt(1 / headDim), scaleQueryFirst: true, probs }));
      const attn = linear(o, p.weight('attn.out_proj.weight'), p.get('attn.out_proj.bias')); // [1, Q, D]
      // PyTorch's MHA is sequence-first: its output [0] is [Q, 1, D].
      const attnSeqFirst = hooks.emit('resampler.attn', attn.reshape([-1, 1, D]) as tf.Tensor3D);
      const post = hooks.emit('resampler.ln_post',
        layerNorm(attnSeqFirst.reshape([1, -1, D]), p.get('ln_post.weight'), p.get('ln_post.bias'), eps));
      // x @ proj: proj is [in, out], not an nn.Linear weight.
      const y = tf.matMul(post.reshape([-1, D]), p.get<tf.Tensor2D>('proj')).reshape([1, -1, D]) as tf.Tensor3D;
      return hooks.emit('resampler', y);
    });
  }

  dispose(): void {
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }
}
