// Random MiniCPM-V checkpoints in the HF layout, for tests and benchmarks without the real weights.
// Deterministic from (seed, tensor name): each tensor has its own PRNG stream, so values do not depend on
// sharding, file order or dtype. Streams tensor by tensor through one reused buffer (the real config is
// 3.4e9 parameters, 6.9 GB of bf16).
import fs from 'node:fs';
import path from 'node:path';
import { expectedTensors, type ExpectedTensor, type MiniCPMVConfig } from '../config.ts';
import { loadConfig } from '../config_file.ts';
import { CheckpointError, INDEX_FILE, SINGLE_FILE } from './checkpoint.ts';
import { f32BitsToBf16, f32BitsToF16 } from './dtype.ts';
import { stageOutputDir } from './outdir.ts';
import { checkShardBytes, planShards, shardName } from './shards.ts';
import { DTYPE_BYTES, numel } from './safetensors.ts';
import { alignedOrder, SafetensorsWriter, type WriteDtype } from './safetensors_writer.ts';

/**
 * Tensors in PyTorch `state_dict()` order of `MiniCPMV` (modules in `__init__` order: llm, vpm, resampler;
 * a module's own parameters before its children's). HF shards follow this order, so the real index's
 * shard assignment is reproduced exactly by `planShards` (test/convert.test.ts).
 */
export function hfStateDictOrder(cfg: MiniCPMVConfig): ExpectedTensor[] {
  const byKey = new Map(expectedTensors(cfg).map((t) => [t.key, t]));
  const order: string[] = ['llm.model.embed_tokens.weight'];
  for (let i = 0; i < cfg.llm.numLayers; i++) {
    const p = `llm.model.layers.${i}.`;
    // modeling_minicpm.py MiniCPMDecoderLayer: self_attn, mlp, input_layernorm, post_attention_layernorm
    for (const s of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
      'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'input_layernorm', 'post_attention_layernorm']) {
      order.push(`${p}${s}.weight`);
    }
  }
  order.push('llm.model.norm.weight', 'llm.lm_head.weight');
  // timm VisionTransformer: pos_embed is an own parameter, so it precedes patch_embed; blocks keep model order.
  order.push(...[...byKey.keys()].filter((k) => k.startsWith('vpm.')));
  // resampler.py: own parameters pos_embed, query, proj; then kv_proj, attn (in_proj_*, out_proj), ln_q, ln_kv, ln_post.
  for (const s of ['pos_embed', 'query', 'proj', 'kv_proj.weight', 'attn.in_proj_weight', 'attn.in_proj_bias',
    'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_q.weight', 'ln_q.bias', 'ln_kv.weight', 'ln_kv.bias',
    'ln_post.weight', 'ln_post.bias']) {
    if (byKey.has(`resampler.${s}`)) order.push(`resampler.${s}`);
  }
  if (order.length !== byKey.size || order.some((k) => !byKey.has(k))) {
    throw new Error('hfStateDictOrder does not cover expectedTensors; update both together');
  }
  return order.map((k) => byKey.get(k)!);
}

// --- PRNG: xoshiro128** (Blackman & Vigna), seeded per tensor by splitmix32 of hash(seed, name). ---

function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class Xoshiro128 {
  a: number; b: number; c: number; d: number; // state, public so fillNormal can keep it in locals
  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix(); this.b = splitmix(); this.c = splitmix(); this.d = splitmix();
  }

  /** Next uniform 32-bit unsigned integer. */
  next(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a; this.d ^= this.b; this.b ^= this.c; this.a ^= this.d;
    this.c ^= t; this.d = rotl(this.d, 11);
    return r;
  }
}
const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) => (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Piecewise-linear inverse normal CDF on 4096 segments, rescaled to unit variance: one PRNG draw per value. */
const SEGMENTS = 4096;
const QUANTILES = (() => {
  const t = new Float64Array(SEGMENTS + 1);
  for (let k = 0; k <= SEGMENTS; k++) t[k] = normalQuantile((k + 0.5) / (SEGMENTS + 1));
  let v = 0; // variance of the mixture of uniform segments (mean is 0 by symmetry)
  for (let k = 0; k < SEGMENTS; k++) v += (t[k] * t[k] + t[k] * t[k + 1] + t[k + 1] * t[k + 1]) / 3;
  const s = 1 / Math.sqrt(v / SEGMENTS);
  for (let k = 0; k <= SEGMENTS; k++) t[k] *= s;
  return t;
})();

/** Fill `out[0..n)` with mean + std * (approximately standard normal) values. */
export function fillNormal(rng: Xoshiro128, out: Float32Array, n: number, mean: number, std: number): void {
  const t = QUANTILES;
  let { a, b, c, d } = rng; // Xoshiro128.next() inlined with the state in locals (2x faster)
  for (let i = 0; i < n; i++) {
    const u = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const s = b << 9;
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= s; d = rotl(d, 11);
    const k = u >>> 20; // top 12 bits pick the segment
    const frac = (u & 0xfffff) * 9.5367431640625e-7; // low 20 bits / 2^20
    out[i] = mean + std * (t[k] + (t[k + 1] - t[k]) * frac);
  }
  rng.a = a; rng.b = b; rng.c = c; rng.d = d;
}

/**
 * resampler.py `get_2d_sincos_pos_embed(D, grid)`, [grid*grid, D]: for token t = i*grid + j (row i, column j),
 * [sin(j w), cos(j w), sin(i w), cos(i w)] with w_k = 1/10000^(k/(D/4)). subtle: the first half encodes the
 * column (np.meshgrid(grid_w, grid_h) puts w first). Computed in float64, rounded to float32 once.
 */
export function sincos2d(D: number, grid: number): Float32Array {
  const q = D / 4;
  const out = new Float32Array(grid * grid * D);
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (i * grid + j) * D;
      for (let k = 0; k < q; k++) {
        const w = 1 / 10000 ** (k / q);
        out[row + k] = Math.sin(j * w);
        out[row + q + k] = Math.cos(j * w);
        out[row + 2 * q + k] = Math.sin(i * w);
        out[row + 3 * q + k] = Math.cos(i * w);
      }
    }
  }
  return out;
}

export type InitRule = { kind: 'normal'; mean: number; std: number } | { kind: 'sincos' };

/** How each tensor is initialised: matrices N(0, 1/sqrt(fan_in)), norm weights N(1, 0.1), biases N(0, 0.02). */
export function initRule(t: ExpectedTensor, cfg: MiniCPMVConfig): InitRule {
  const k = t.key;
  const normal = (mean: number, std: number): InitRule => ({ kind: 'normal', mean, std });
  if (k === 'resampler.pos_embed') return { kind: 'sincos' };
  if (k === 'llm.model.embed_tokens.weight') {
    const r = cfg.raw.initializer_range;
    return normal(0, typeof r === 'number' && r > 0 ? r : 0.02);
  }
  if (k === 'vpm.pos_embed' || k === 'resampler.query') return normal(0, 0.02); // trunc_normal_(std=.02) upstream
  if (/(norm\d?|layernorm|ln_\w+)\.weight$/.test(k)) return normal(1, 0.1);
  if (/bias$/.test(k)) return normal(0, 0.02);
  if (k === 'resampler.proj') return normal(0, 1 / Math.sqrt(t.shape[0])); // used as x @ proj: fan_in = rows
  if (t.shape.length >= 2) return normal(0, 1 / Math.sqrt(numel(t.shape.slice(1)))); // [out, in, ...]
  throw new Error(`initRule: no rule for tensor "${k}" ${JSON.stringify(t.shape)}`);
}

export interface RandomCheckpointOptions {
  dtype: 'bf16' | 'f16' | 'f32';
  seed: number;
  /** Max bytes per shard (HF default "5GB" = 5e9); one shard means a single model.safetensors. */
  shardBytes?: number;
  /** Replace a non-empty output directory that holds only checkpoint files. */
  force?: boolean;
  onProgress?: (done: number, total: number, key: string) => void;
}

export interface RandomCheckpointResult { files: string[]; totalBytes: number; tensors: number }

const DTYPE_OF: Record<RandomCheckpointOptions['dtype'], WriteDtype> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };
const CHUNK = 1 << 20; // elements per generated piece

/** Write a random checkpoint in the HF layout (index + shards, or one model.safetensors) plus config.json. */
export function writeRandomCheckpoint(configPath: string, outDir: string, opts: RandomCheckpointOptions): RandomCheckpointResult {
  const dtype = DTYPE_OF[opts.dtype];
  if (!dtype) throw new CheckpointError(`random weights: dtype must be bf16, f16 or f32, got ${JSON.stringify(opts.dtype)}`);
  if (!Number.isSafeInteger(opts.seed)) throw new CheckpointError(`random weights: seed must be an integer below 2^53 in size, got ${opts.seed}`);
  const shardBytes = opts.shardBytes ?? 5e9;
  checkShardBytes(shardBytes, 'random weights: shardBytes');
  const cfg = loadConfig(configPath);
  const ordered = hfStateDictOrder(cfg);
  const byKey = new Map(ordered.map((t) => [t.key, t]));
  const size = DTYPE_BYTES[dtype];
  const shards = planShards(ordered.map((t) => ({ key: t.key, bytes: numel(t.shape) * size })), shardBytes);
  const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, i) => shardName(i, shards.length));

  const staged = stageOutputDir(outDir, { force: opts.force, what: 'a random checkpoint' });
  const f32 = new Float32Array(CHUNK);
  const bits = new Uint32Array(f32.buffer);
  const half = new Uint16Array(CHUNK);
  let done = 0;
  let totalBytes = 0;
  try {
    const weightMap: Record<string, string> = {};
    shards.forEach((keys, s) => {
      // The Python library lays tensors out sorted by name (same dtype); do the same, those whose bytes are not a
      // multiple of 64 last (alignedOrder), so every other tensor starts 64-byte aligned.
      const sorted = alignedOrder([...keys].sort(), (k) => numel(byKey.get(k)!.shape) * size);
      const w = new SafetensorsWriter(path.join(staged.tmp, names[s]),
        sorted.map((k) => ({ name: k, dtype, shape: byKey.get(k)!.shape })), { format: 'pt' });
      try {
        for (const key of sorted) {
          const t = byKey.get(key)!;
          const rule = initRule(t, cfg);
          const n = numel(t.shape);
          const table = rule.kind === 'sincos' ? sincos2d(t.shape[1], cfg.resampler.gridSize) : undefined;
          const rng = new Xoshiro128(fnv1a(key, opts.seed >>> 0) ^ Math.floor(opts.seed / 2 ** 32));
          for (let off = 0; off < n; off += CHUNK) {
            const m = Math.min(CHUNK, n - off);
            if (table) f32.set(table.subarray(off, off + m));
            else if (rule.kind === 'normal') fillNormal(rng, f32, m, rule.mean, rule.std);
            if (dtype === 'F32') w.appendEncoded(new Uint8Array(f32.buffer, 0, m * 4));
            else {
              if (dtype === 'BF16') for (let i = 0; i < m; i++) half[i] = f32BitsToBf16(bits[i]);
              else for (let i = 0; i < m; i++) half[i] = f32BitsToF16(bits[i]);
              w.appendEncoded(new Uint8Array(half.buffer, 0, m * 2));
            }
          }
          weightMap[key] = names[s];
          opts.onProgress?.(++done, ordered.length, key);
        }
        w.close();
        totalBytes += w.bytesWritten;
      } catch (e) {
        w.abort();
        throw e;
      }
    });
    fs.copyFileSync(configPath, path.join(staged.tmp, 'config.json'));
    if (shards.length > 1) {
      const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
      const dataBytes = ordered.reduce((s, t) => s + numel(t.shape) * size, 0);
      fs.writeFileSync(path.join(staged.tmp, INDEX_FILE),
        JSON.stringify({ metadata: { total_size: dataBytes }, weight_map: sortedMap }, null, 2) + '\n');
    }
    staged.commit();
  } catch (e) {
    staged.cleanup();
    throw e;
  }
  return { files: names.map((n) => path.join(outDir, n)), totalBytes, tensors: ordered.length };
}
