// Typed MiniCPM-V v1 config, parsed from the HF `config.json` (HF spellings in, camelCase out), with every
// derived number computed here once. Sources: `configuration_minicpm.py` (MiniCPMConfig / MiniCPMVConfig
// defaults), `modeling_minicpmv.py` (vision tower, resampler construction), timm v0.9.10
// `vision_transformer.py` (so400m sizes); all in TobyYang7/Vision `MiniCPM-V/` @ 654184f, see SPEC §1-§4.
import { UserError } from './errors.ts';

export interface VisionConfig {
  embedDim: number;
  depth: number; // timm depth before the last block is dropped
  blocksRun: number; // depth - 1 when drop_vision_last_layer (the real model runs 26 of 27)
  numHeads: number;
  headDim: number;
  mlpHidden: number;
  patchSize: number; // 14
  posGrid: number; // 27: timm builds the pos table for img_size 384 (384 // 14)
  imageSize: number; // 448: every image is resized to this square
  eps: number; // LayerNorm eps 1e-6
}

export interface ResamplerConfig {
  numQueries: number; // query_num (64)
  gridSize: number; // int(sqrt(query_num)) = 8
  embedDim: number; // = llm hidden
  numHeads: number; // hidden // 128
  kvDim: number; // = vision embed
  eps: number; // 1e-6
}

export interface LlmConfig {
  hidden: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  ropeTheta: number;
  rmsEps: number;
  scaleEmb: number;
  dimModelBase: number;
  scaleDepth: number;
  residualScale: number; // scale_depth / sqrt(num_hidden_layers)
  logitDivisor: number; // hidden / dim_model_base
  bosId: number;
  eosId: number;
}

export interface MiniCPMVConfig {
  vision: VisionConfig;
  resampler: ResamplerConfig;
  llm: LlmConfig;
  dropVisionLastLayer: boolean;
  raw: Record<string, unknown>;
}

export class ConfigError extends UserError {}

/**
 * What the architecture (and this implementation) can run, checked before anything is sized from a config:
 * a config.json of `"num_hidden_layers": 2147483648` must fail on its line, not build a key list of 19
 * billion names. The real model sits far inside every bound (SPEC §1: 40 layers, 27 ViT blocks, image 448,
 * 64 queries, largest tensor 282,822,912 elements).
 */
export const CONFIG_LIMITS = {
  /** LLM decoder layers and ViT blocks: each adds 9 or 12 tensors to the expected key list. */
  maxLayers: 1024,
  /** One tensor is one TF.js typed array, indexed with int32 in the kernels (and the native reader). */
  maxTensorElements: 2 ** 31 - 1,
  /**
   * The square every image is resized to: 1..449 (ceil(449 / 14) = 33 patches a side). The original accepts
   * any positive size (torchvision Resize, timm dynamic_img_pad), but the ViT attends over ceil(S/14)^2
   * tokens in one [heads, N, N] matrix: 5000 asks TF.js for tens of GB.
   */
  imageSize: [1, 449] as const,
  /** `query_num` image tokens sit in the prompt with BOS, <image> and </image>, and the original cuts the
   * prompt at 2048 ids (chat.ts MAX_INPUT_LENGTH): 2045 at most, so the largest square is 45^2 = 2025. */
  maxQueryNum: 2025,
  /** RMSNorm / LayerNorm eps: 1e-5 and 1e-6 in practice; below 1e-12 is zero in float32 sums, above 0.1 swamps the variance. */
  rmsEps: [1e-12, 0.1] as const,
  /** RoPE base: 1e4 here, up to ~1e7 in long-context models; <= 1 makes the frequencies grow instead of decay. */
  ropeTheta: [1, 1e10] as const,
  /** scale_emb, scale_depth, dim_model_base, vision_mlp_ratio, initializer_range: positive, and finite in float32 products. */
  maxScale: 1e6,
  /** max_position_embeddings: only compared against (the rotary table grows with the prompt), but an int32. */
  maxPositions: 2 ** 31 - 1,
} as const;

/** timm encoders the v1 code can name. so400m: timm v0.9.10 `vit_so400m_patch14_siglip_384`
 * (embed 1152, depth 27, 16 heads, mlp_ratio 3.7362 -> int(1152*3.7362) = 4304, img_size 384). */
const VISION_ENCODERS: Record<string, { embedDim: number; depth: number; numHeads: number; mlpHidden: number;
  patchSize: number; pretrainSize: number }> = {
  'vit_so400m_patch14_siglip_384.webli': { embedDim: 1152, depth: 27, numHeads: 16, mlpHidden: 4304, patchSize: 14, pretrainSize: 384 },
};
VISION_ENCODERS.vit_so400m_patch14_siglip_384 = VISION_ENCODERS['vit_so400m_patch14_siglip_384.webli']; // same arch, no tag

type Json = Record<string, unknown>;

class Reader {
  constructor(private readonly json: Json, private readonly source: string) {}

  fail(key: string, what: string): never {
    throw new ConfigError(`${this.source}: "${key}" ${what}, got ${JSON.stringify(this.json[key])}`);
  }

  int(key: string, def?: number, min = 1, max?: number, why = ''): number {
    const v = this.json[key] ?? def;
    if (v === undefined) throw new ConfigError(`${this.source}: required key "${key}" is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || (max !== undefined && v > max)) {
      this.fail(key, max === undefined ? `must be an integer >= ${min}` : `must be an integer in ${min}..${max}${why}`);
    }
    return v;
  }

  /** A finite number in (min, max], or [min, max] with `minIncluded` (default (0, maxScale]: positive). */
  num(key: string, def?: number, min = 0, max: number = CONFIG_LIMITS.maxScale, minIncluded = false): number {
    const v = this.json[key] ?? def;
    if (v === undefined) throw new ConfigError(`${this.source}: required key "${key}" is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v) || (minIncluded ? v < min : v <= min) || v > max) {
      this.fail(key, `must be a number in ${minIncluded ? '[' : '('}${min}, ${max}]`);
    }
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.json[key] ?? def;
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }

  str(key: string, def: string): string {
    const v = this.json[key] ?? def;
    if (typeof v !== 'string') this.fail(key, 'must be a string');
    return v;
  }

  /** A key whose only supported value is `expected` (absent means the HF default, which is `expected`). */
  only(key: string, expected: unknown, why: string): void {
    const v = this.json[key];
    if (v !== undefined && v !== expected) this.fail(key, `must be ${JSON.stringify(expected)} (${why})`);
  }
}

/**
 * Parse and validate a MiniCPM-V v1 `config.json`. Keys the HF config class defaults are optional here with
 * the same defaults (MiniCPMConfig: rms_norm_eps 1e-6, rope_theta 1e4, scale_emb 1, dim_model_base 1,
 * scale_depth 1, max_position_embeddings 2048, bos 1, eos 2; MiniCPMVConfig: query_num 64, image_size 448,
 * drop_vision_last_layer true); the core sizes are required. Errors name `source` and the key.
 */
export function parseConfig(json: unknown, source = 'config.json'): MiniCPMVConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: config must be a JSON object`);
  }
  const raw = json as Json;
  const r = new Reader(raw, source);

  // Guards against configs of other families that this v1 implementation would silently mis-run.
  r.only('model_type', 'minicpmv', 'this implements MiniCPM-V v1');
  if ('version' in raw || 'slice_mode' in raw) {
    throw new ConfigError(`${source}: has "${'version' in raw ? 'version' : 'slice_mode'}", a MiniCPM-V 2.x key; this implements v1 only`);
  }
  r.only('hidden_act', 'silu', 'MiniCPM MLP is SwiGLU');
  r.only('rope_scaling', null, 'RoPE scaling is not implemented');
  r.only('attention_bias', false, 'the checkpoint has no attention biases');
  r.only('tie_word_embeddings', false, 'v1 stores a separate llm.lm_head.weight');

  // --- LLM (MiniCPM-2.4B) ---
  const L = CONFIG_LIMITS;
  const hidden = r.int('hidden_size');
  const numLayers = r.int('num_hidden_layers', undefined, 1, L.maxLayers);
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (hidden % numHeads !== 0) throw new ConfigError(`${source}: "hidden_size" ${hidden} is not divisible by "num_attention_heads" ${numHeads}`);
  if (numHeads % numKvHeads !== 0) throw new ConfigError(`${source}: "num_attention_heads" ${numHeads} is not a multiple of "num_key_value_heads" ${numKvHeads}`);
  const headDim = hidden / numHeads;
  if (headDim % 2 !== 0) throw new ConfigError(`${source}: head dim ${headDim} must be even for rotate-half RoPE`);
  const dimModelBase = r.num('dim_model_base', 1);
  const scaleDepth = r.num('scale_depth', 1);
  const llm: LlmConfig = {
    hidden, numLayers, numHeads, numKvHeads, headDim,
    intermediate: r.int('intermediate_size'),
    vocab: r.int('vocab_size'),
    maxPositions: r.int('max_position_embeddings', 2048, 1, L.maxPositions),
    ropeTheta: r.num('rope_theta', 10000, L.ropeTheta[0], L.ropeTheta[1]),
    rmsEps: r.num('rms_norm_eps', 1e-6, L.rmsEps[0], L.rmsEps[1], true),
    scaleEmb: r.num('scale_emb', 1),
    dimModelBase,
    scaleDepth,
    residualScale: scaleDepth / Math.sqrt(numLayers), // modeling_minicpm.py: scale_depth / math.sqrt(num_hidden_layers)
    logitDivisor: hidden / dimModelBase, // modeling_minicpm.py: hidden_states / (hidden_size / dim_model_base)
    bosId: r.int('bos_token_id', 1, 0),
    eosId: r.int('eos_token_id', 2, 0),
  };
  if ('initializer_range' in raw) r.num('initializer_range'); // random-weights draws embeddings with it
  for (const k of ['bosId', 'eosId'] as const) {
    if (llm[k] >= llm.vocab) throw new ConfigError(`${source}: "${k === 'bosId' ? 'bos' : 'eos'}_token_id" ${llm[k]} is outside the vocabulary (${llm.vocab})`);
  }

  // --- Vision tower (timm ViT); tiny test configs give the sizes explicitly ---
  const encoder = r.str('vision_encoder', 'vit_so400m_patch14_siglip_384.webli');
  const base = VISION_ENCODERS[encoder];
  if (!base) {
    throw new ConfigError(`${source}: "vision_encoder" ${JSON.stringify(encoder)} is not a known timm encoder (known: ${Object.keys(VISION_ENCODERS).join(', ')})`);
  }
  const embedDim = r.int('vision_embed_dim', base.embedDim);
  const depth = r.int('vision_depth', base.depth, 1, L.maxLayers);
  const vHeads = r.int('vision_num_heads', base.numHeads);
  if (embedDim % vHeads !== 0) throw new ConfigError(`${source}: "vision_embed_dim" ${embedDim} is not divisible by "vision_num_heads" ${vHeads}`);
  let mlpHidden = base.mlpHidden;
  if ('vision_mlp_ratio' in raw) mlpHidden = Math.floor(embedDim * r.num('vision_mlp_ratio')); // timm: int(embed_dim * mlp_ratio)
  if ('vision_mlp_hidden_dim' in raw) {
    const given = r.int('vision_mlp_hidden_dim');
    if ('vision_mlp_ratio' in raw && given !== mlpHidden) {
      throw new ConfigError(`${source}: "vision_mlp_hidden_dim" ${given} disagrees with int(vision_embed_dim * vision_mlp_ratio) = ${mlpHidden}`);
    }
    mlpHidden = given;
  } else if (mlpHidden < 1) {
    throw new ConfigError(`${source}: "vision_mlp_ratio" gives an MLP of int(${embedDim} * ratio) = ${mlpHidden} units; it must be at least 1`);
  } else if (!('vision_mlp_ratio' in raw) && embedDim !== base.embedDim) {
    throw new ConfigError(`${source}: "vision_embed_dim" is set without "vision_mlp_hidden_dim" or "vision_mlp_ratio"`);
  }
  const dropVisionLastLayer = r.bool('drop_vision_last_layer', true);
  const blocksRun = dropVisionLastLayer ? depth - 1 : depth;
  if (blocksRun < 1) throw new ConfigError(`${source}: "vision_depth" ${depth} leaves no block to run after dropping the last one`);
  const imageSize = r.int('image_size', 448, L.imageSize[0], L.imageSize[1],
    ` (patch ${base.patchSize}; the ViT attends over ceil(size / ${base.patchSize})^2 patches)`);
  const vision: VisionConfig = {
    embedDim, depth, blocksRun, numHeads: vHeads, headDim: embedDim / vHeads, mlpHidden,
    patchSize: base.patchSize,
    posGrid: Math.floor(base.pretrainSize / base.patchSize),
    imageSize,
    eps: 1e-6, // timm: partial(nn.LayerNorm, eps=1e-6)
  };

  // --- Resampler (modeling_minicpmv.py: init_resampler) ---
  const numQueries = r.int('query_num', 64, 1, L.maxQueryNum, ' (the image tokens must fit the 2048-token prompt)');
  const gridSize = Math.floor(Math.sqrt(numQueries));
  if (gridSize * gridSize !== numQueries) throw new ConfigError(`${source}: "query_num" ${numQueries} must be a perfect square (grid_size = int(sqrt(query_num)))`);
  const rHeads = Math.floor(hidden / 128);
  if (rHeads < 1 || hidden % rHeads !== 0) {
    throw new ConfigError(`${source}: "hidden_size" ${hidden} gives ${rHeads} resampler heads (hidden // 128); it must be >= 128 and divisible by that`);
  }
  const resampler: ResamplerConfig = { numQueries, gridSize, embedDim: hidden, numHeads: rHeads, kvDim: embedDim, eps: 1e-6 };

  const cfg: MiniCPMVConfig = { vision, resampler, llm, dropVisionLastLayer, raw };
  // Every size is now bounded (layer counts above), so the key list is small; no tensor may outgrow a typed array.
  for (const t of expectedTensors(cfg)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n > L.maxTensorElements) {
      throw new ConfigError(`${source}: the sizes give ${t.key} the shape [${t.shape.join(', ')}], ${n.toExponential(3)} elements; ` +
        `one tensor can hold at most ${L.maxTensorElements} (2^31 - 1)`);
    }
  }
  return cfg;
}

export interface ExpectedTensor { key: string; shape: number[]; role: 'vision' | 'resampler' | 'llm' }

/**
 * Every tensor the checkpoint must hold, with its shape, in model order: `vpm.*` (pos_embed, patch_embed,
 * blocks 0..blocksRun-1, norm), then `resampler.*`, then `llm.*` (embed, layers, norm, lm_head). The HF
 * index lists the same keys sorted by name. Shapes: SPEC §2-§4 (Linear weights are [out, in]).
 */
export function expectedTensors(cfg: MiniCPMVConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const { vision: v, resampler: r, llm: l } = cfg;
  const vis = (key: string, shape: number[]) => out.push({ key: `vpm.${key}`, shape, role: 'vision' });
  vis('pos_embed', [1, v.posGrid * v.posGrid, v.embedDim]);
  vis('patch_embed.proj.weight', [v.embedDim, 3, v.patchSize, v.patchSize]); // OIHW conv
  vis('patch_embed.proj.bias', [v.embedDim]);
  for (let i = 0; i < v.blocksRun; i++) {
    const b = `blocks.${i}.`;
    vis(`${b}norm1.weight`, [v.embedDim]);
    vis(`${b}norm1.bias`, [v.embedDim]);
    vis(`${b}attn.qkv.weight`, [3 * v.embedDim, v.embedDim]);
    vis(`${b}attn.qkv.bias`, [3 * v.embedDim]);
    vis(`${b}attn.proj.weight`, [v.embedDim, v.embedDim]);
    vis(`${b}attn.proj.bias`, [v.embedDim]);
    vis(`${b}norm2.weight`, [v.embedDim]);
    vis(`${b}norm2.bias`, [v.embedDim]);
    vis(`${b}mlp.fc1.weight`, [v.mlpHidden, v.embedDim]);
    vis(`${b}mlp.fc1.bias`, [v.mlpHidden]);
    vis(`${b}mlp.fc2.weight`, [v.embedDim, v.mlpHidden]);
    vis(`${b}mlp.fc2.bias`, [v.embedDim]);
  }
  vis('norm.weight', [v.embedDim]);
  vis('norm.bias', [v.embedDim]);

  const res = (key: string, shape: number[]) => out.push({ key: `resampler.${key}`, shape, role: 'resampler' });
  const D = r.embedDim;
  res('query', [r.numQueries, D]);
  res('pos_embed', [r.numQueries, D]);
  // resampler.py: kv_proj is nn.Identity (no weight) when kv_dim == embed_dim.
  if (r.kvDim !== D) res('kv_proj.weight', [D, r.kvDim]);
  for (const ln of ['ln_q', 'ln_kv', 'ln_post']) {
    res(`${ln}.weight`, [D]);
    res(`${ln}.bias`, [D]);
  }
  res('attn.in_proj_weight', [3 * D, D]);
  res('attn.in_proj_bias', [3 * D]);
  res('attn.out_proj.weight', [D, D]);
  res('attn.out_proj.bias', [D]);
  res('proj', [D, D]); // raw matrix used as x @ proj

  const lm = (key: string, shape: number[]) => out.push({ key: `llm.${key}`, shape, role: 'llm' });
  const H = l.hidden;
  const kvOut = l.numKvHeads * l.headDim;
  lm('model.embed_tokens.weight', [l.vocab, H]);
  for (let i = 0; i < l.numLayers; i++) {
    const p = `model.layers.${i}.`;
    lm(`${p}input_layernorm.weight`, [H]);
    lm(`${p}self_attn.q_proj.weight`, [H, H]);
    lm(`${p}self_attn.k_proj.weight`, [kvOut, H]);
    lm(`${p}self_attn.v_proj.weight`, [kvOut, H]);
    lm(`${p}self_attn.o_proj.weight`, [H, H]);
    lm(`${p}post_attention_layernorm.weight`, [H]);
    lm(`${p}mlp.gate_proj.weight`, [l.intermediate, H]);
    lm(`${p}mlp.up_proj.weight`, [l.intermediate, H]);
    lm(`${p}mlp.down_proj.weight`, [H, l.intermediate]);
  }
  lm('model.norm.weight', [H]);
  lm('lm_head.weight', [l.vocab, H]);
  return out;
}

/**
 * A small valid config.json object for tests that need no files from outside the repository (the same
 * architecture with tiny sizes; vision sizes given explicitly as in the golden tiny configs).
 */
export function tinyConfigJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['MiniCPMV'], model_type: 'minicpmv', hidden_act: 'silu',
    hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2,
    intermediate_size: 256, vocab_size: 512, max_position_embeddings: 2048, rope_theta: 10000.0,
    rms_norm_eps: 1e-5, scale_emb: 12, dim_model_base: 16, scale_depth: 1.4, tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, query_num: 64, image_size: 448, drop_vision_last_layer: true,
    vision_encoder: 'vit_so400m_patch14_siglip_384.webli',
    vision_embed_dim: 32, vision_depth: 3, vision_num_heads: 2, vision_mlp_ratio: 3.7362, vision_mlp_hidden_dim: 119,
    torch_dtype: 'float32',
    ...overrides,
  };
}
