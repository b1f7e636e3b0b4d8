// `vpm`: timm's vit_so400m_patch14_siglip_384 as MiniCPM-V v1 builds it
// (modeling_minicpmv.py `init_vision_module`; timm v0.9.10
// vision_transformer.py): patch embed, absolute pos table resampled to the
// patch grid, pre-norm blocks, final LayerNorm. No class token, no attn_pool,
// and with drop_vision_last_layer only blocks[:-1] run.
import * as tf from '../tfjs.ts';
import type { VisionConfig } from '../config.ts';
import { scaledDotProductAttention, mergeHeads, splitHeads } from '../layers/attention.ts';
import { layerNorm } from '../layers/layer_norm.ts';
import { linear } from '../layers/linear.ts';
import { vitMlp } from '../layers/mlp.ts';
import { convKernelOIHWtoHWIO, patchEmbed } from '../layers/patch_embed.ts';
import { resizeBicubic } from '../ops/bicubic.ts';
import { ShapeError } from '../errors.ts';
import { Hooks } from './hooks.ts';
import type { ParamStore, Scope } from './params.ts';

const KERNEL_HWIO = 'vpm.patch_embed.proj.weight#hwio';

export class SiglipVit {
  private readonly p: Scope;
  private readonly posCache = new Map<string, tf.Tensor3D>();

  constructor(private readonly store: ParamStore, readonly cfg: VisionConfig) {
    this.p = store.scope('vpm');
    // OIHW [C, 3, P, P] -> HWIO [P, P, 3, C], once. (Keys and shapes were checked by weights/loader.ts.)
    store.setDerived(KERNEL_HWIO, convKernelOIHWtoHWIO(this.p.get<tf.Tensor4D>('patch_embed.proj.weight')));
  }

  /**
   * `vpm.pos_embed` [1, G*G, C] resampled to the patch grid (timm
   * `resample_abs_pos_embed`: antialiased bicubic, returned unchanged when the
   * grid already matches). Cached per grid size; owned by this module.
   */
  posEmbedFor(hp: number, wp: number): tf.Tensor3D {
    const key = `${hp}x${wp}`;
    let pos = this.posCache.get(key);
    if (!pos) {
      const G = this.cfg.posGrid, C = this.cfg.embedDim;
      const table = this.p.get<tf.Tensor3D>('pos_embed'); // [1, G*G, C]
      pos = tf.tidy(() =>
        hp === G && wp === G
          ? table.clone()
          : (resizeBicubic(table.reshape([G, G, C]), hp, wp, 'aa').reshape([1, hp * wp, C]) as tf.Tensor3D),
      );
      this.posCache.set(key, tf.keep(pos)); // kept: created inside the caller's tidy
    }
    return pos;
  }

  /** pixels NCHW [1, 3, H, W] -> features [1, Hp*Wp, C] (`vpm.norm`). */
  forward(pixels: tf.Tensor4D, hooks: Hooks = Hooks.none()): tf.Tensor3D {
    const { embedDim: C, numHeads, headDim, eps } = this.cfg;
    if (pixels.rank !== 4 || pixels.shape[1] !== 3) throw new ShapeError(`vpm: expected pixel_values [B, 3, H, W], got [${pixels.shape}]`);
    return tf.tidy(() => {
      pixels = hooks.emit('pixel_values', pixels);
      const pe = hooks.emit('vpm.patch_embed',
        patchEmbed(pixels, this.store.get<tf.Tensor4D>(KERNEL_HWIO), this.p.get('patch_embed.proj.bias')));
      const [B, hp, wp] = pe.shape;
      const pos = hooks.emit('vpm.pos_embed_resampled', this.posEmbedFor(hp, wp));
      let x = tf.add(pe.reshape([B, hp * wp, C]), pos) as tf.Tensor3D; // [B, N, C], tokens in row-major (h, w)
      for (let i = 0; i < this.cfg.blocksRun; i++) {
        const b = this.p.scope('blocks').scope(i), name = `vpm.blocks.${i}`;
        // Nested scopes free each part's intermediates as soon as it is done (the attention's q, k, v and
        // scores before the MLP runs), so an encode's transient memory is one part's, not a whole block's; the
        // previous block's output goes as soon as this block's exists.
        const prev = x;
        x = tf.tidy(() => {
          const x1 = tf.tidy(() => {
            const h1 = hooks.emit(`${name}.norm1`, layerNorm(x, b.get('norm1.weight'), b.get('norm1.bias'), eps));
            const o = tf.tidy(() => {
              // qkv rows are [q | k | v], each 16 heads x 72 contiguous features (reshape(B, N, 3, H, d)).
              const qkv = linear(h1, b.weight('attn.qkv.weight'), b.get('attn.qkv.bias'));
              const [q, k, v] = tf.split(qkv, 3, 2).map((t) => splitHeads(t, numHeads)); // [B, H, N, d]
              // Scaling q before q kᵀ instead of the [H, N, N] scores: the same product reassociated (PyTorch's
              // math SDPA scales q and k by sqrt(scale) each), and 1024/72 times fewer multiplies.
              return mergeHeads(scaledDotProductAttention(q, k, v, { scale: headDim ** -0.5, scaleQueryFirst: true }));
            });
            const attn = hooks.emit(`${name}.attn`, linear(o, b.weight('attn.proj.weight'), b.get('attn.proj.bias')));
            return tf.add(x, attn);
          });
          const h2 = hooks.emit(`${name}.norm2`, layerNorm(x1, b.get('norm2.weight'), b.get('norm2.bias'), eps));
          const mlp = hooks.emit(`${name}.mlp`, vitMlp(h2,
            { weight: b.weight('mlp.fc1.weight'), bias: b.get('mlp.fc1.bias') },
            { weight: b.weight('mlp.fc2.weight'), bias: b.get('mlp.fc2.bias') }));
          return hooks.emit(name, tf.add(x1, mlp) as tf.Tensor3D);
        });
        prev.dispose();
      }
      return hooks.emit('vpm.norm', layerNorm(x, this.p.get('norm.weight'), this.p.get('norm.bias'), eps) as tf.Tensor3D);
    });
  }

  dispose(): void {
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }
}
