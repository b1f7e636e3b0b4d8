import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedTensors, tinyConfigJson, type MiniCPMVConfig } from '../src/config.ts';
import { loadConfig } from '../src/config_file.ts';
import { CheckpointError, MANIFEST_FILE, openCheckpoint } from '../src/weights/checkpoint.ts';
import { convertCheckpoint, planConvertedFiles, verifyConvertedCheckpoint } from '../src/weights/convert.ts';
import { bf16ToF32Value, f32ToBf16Value } from '../src/weights/dtype.ts';
import { validateCheckpoint, WeightsError } from '../src/weights/loader.ts';
import { fillNormal, hfStateDictOrder, writeRandomCheckpoint, Xoshiro128 } from '../src/weights/random.ts';
import { planShards, shardName } from '../src/weights/shards.ts';
import { numel, SafetensorsFile } from '../src/weights/safetensors.ts';
import { alignedOrder, DATA_ALIGN, writeSafetensors } from '../src/weights/safetensors_writer.ts';
import { named, shared, unmet } from './helpers/requires.ts';

/**
 * The writers' layout: `order` with the tensors whose bytes are not a multiple of DATA_ALIGN moved last, the data
 * starting at a multiple of DATA_ALIGN, and so every tensor before the first unaligned size starting aligned.
 */
function expectAlignedLayout(f: SafetensorsFile, order: string[]): void {
  const bytes = (k: string) => f.info(k).end - f.info(k).begin;
  expect(f.keys()).toEqual(alignedOrder(order, bytes));
  expect(f.dataStart % DATA_ALIGN).toBe(0);
  for (const k of f.keys().filter((k) => bytes(k) % DATA_ALIGN === 0)) expect((f.dataStart + f.info(k).begin) % DATA_ALIGN, k).toBe(0);
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const reference = path.resolve(repoRoot, '..', 'shared', 'reference');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'convert-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const configPath = path.join(tmp, 'config.json');
const hfBf16 = path.join(tmp, 'hf-bf16'); // sharded, bf16, with tokenizer files
const hfF32 = path.join(tmp, 'hf-f32'); // single file, f32
let cfg: MiniCPMVConfig;

beforeAll(() => {
  fs.writeFileSync(configPath, JSON.stringify(tinyConfigJson()));
  cfg = loadConfig(configPath);
  writeRandomCheckpoint(configPath, hfBf16, { dtype: 'bf16', seed: 3, shardBytes: 600_000 });
  fs.writeFileSync(path.join(hfBf16, 'tokenizer.model'), 'not a real tokenizer, copied verbatim');
  fs.writeFileSync(path.join(hfBf16, 'generation_config.json'), '{"bos_token_id": 1, "eos_token_id": 2}');
  writeRandomCheckpoint(configPath, hfF32, { dtype: 'f32', seed: 3 });
});

function caught(fn: () => unknown): Error {
  try { fn(); } catch (e) { return e as Error; }
  throw new Error('expected an error');
}
/** Entries of `tmp` that are staging leftovers. */
const leftovers = () => fs.readdirSync(tmp).filter((e) => e.includes('.tmp-') || e.includes('.old-'));
const sha256 = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('random checkpoints', () => {
  it('HF layout: index + shards, config copied, tensors sorted by name inside each shard (unaligned sizes last)', () => {
    const index = JSON.parse(fs.readFileSync(path.join(hfBf16, 'model.safetensors.index.json'), 'utf8'));
    const shardFiles = [...new Set(Object.values(index.weight_map))] as string[];
    expect(shardFiles.length).toBeGreaterThan(1);
    expect(shardFiles.sort()).toEqual(shardFiles.map((_, i) => shardName(i, shardFiles.length)));
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
    const params = expectedTensors(cfg).reduce((s, t) => s + numel(t.shape), 0);
    expect(index.metadata.total_size).toBe(params * 2);
    expect(JSON.parse(fs.readFileSync(path.join(hfBf16, 'config.json'), 'utf8'))).toEqual(tinyConfigJson());
    for (const name of shardFiles) {
      const f = SafetensorsFile.open(path.join(hfBf16, name));
      expectAlignedLayout(f, [...f.keys()].sort());
      expect(f.metadata).toEqual({ format: 'pt' });
      expect(new Set(f.keys().map((k) => f.info(k).dtype))).toEqual(new Set(['BF16']));
      f.close();
    }
    expect(fs.readdirSync(hfF32).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('deterministic from the seed; values independent of dtype; statistics as documented', () => {
    const again = path.join(tmp, 'again');
    writeRandomCheckpoint(configPath, again, { dtype: 'f32', seed: 3 });
    expect(sha256(path.join(again, 'model.safetensors'))).toBe(sha256(path.join(hfF32, 'model.safetensors')));
    const other = path.join(tmp, 'other-seed');
    writeRandomCheckpoint(configPath, other, { dtype: 'f32', seed: 4 });
    const a = SafetensorsFile.open(path.join(hfF32, 'model.safetensors'));
    const b = SafetensorsFile.open(path.join(other, 'model.safetensors'));
    expect(a.readFloat32('llm.lm_head.weight')).not.toEqual(b.readFloat32('llm.lm_head.weight'));
    b.close();
    // bf16 checkpoint with the same seed = RNE(bf16) of the f32 one, element by element.
    const bf = openCheckpoint(hfBf16);
    for (const key of ['vpm.blocks.0.attn.qkv.weight', 'llm.model.norm.weight', 'resampler.pos_embed']) {
      const x = a.readFloat32(key);
      const y = bf.readFloat32(key);
      for (let i = 0; i < x.length; i++) if (y[i] !== bf16ToF32Value(f32ToBf16Value(x[i]))) throw new Error(`${key}[${i}]`);
    }
    bf.close();
    const stats = (key: string) => {
      const d = a.readFloat32(key);
      let s = 0, s2 = 0, within = 0;
      for (const v of d) { s += v; s2 += v * v; }
      const mean = s / d.length, std = Math.sqrt(s2 / d.length - mean * mean);
      for (const v of d) if (Math.abs(v - mean) < std) within++;
      return { mean, std, within: within / d.length, n: d.length };
    };
    const m = stats('llm.model.embed_tokens.weight'); // N(0, 0.02): initializer_range absent from the tiny preset
    expect(Math.abs(m.mean)).toBeLessThan(5 * 0.02 / Math.sqrt(m.n));
    expect(m.std).toBeGreaterThan(0.02 * 0.98);
    expect(m.std).toBeLessThan(0.02 * 1.02);
    expect(Math.abs(m.within - 0.6827)).toBeLessThan(0.01); // normal: 68.27% within one sigma
    const down = stats('llm.model.layers.0.mlp.down_proj.weight'); // fan_in 256
    expect(Math.abs(down.std * Math.sqrt(256) - 1)).toBeLessThan(0.02);
    const norm = stats('vpm.norm.weight');
    expect(Math.abs(norm.mean - 1)).toBeLessThan(0.06);
    // resampler.pos_embed is the 2-D sin-cos table: token t = i*8 + j, first half encodes the column j.
    const pe = a.readFloat32('resampler.pos_embed');
    const D = 128, q = D / 4;
    for (const [i, j, k] of [[0, 0, 0], [2, 5, 3], [7, 1, 31], [4, 6, 17]]) {
      const row = (i * 8 + j) * D, w = 10000 ** (-k / q);
      expect(pe[row + k]).toBeCloseTo(Math.sin(j * w), 6);
      expect(pe[row + q + k]).toBeCloseTo(Math.cos(j * w), 6);
      expect(pe[row + 2 * q + k]).toBeCloseTo(Math.sin(i * w), 6);
      expect(pe[row + 3 * q + k]).toBeCloseTo(Math.cos(i * w), 6);
    }
    a.close();
  });

  it('fillNormal advances the PRNG exactly like next() (its inlined copy)', () => {
    const r1 = new Xoshiro128(42);
    const r2 = new Xoshiro128(42);
    const buf = new Float32Array(1000);
    fillNormal(r1, buf, 1000, 0, 1);
    for (let i = 0; i < 1000; i++) r2.next();
    expect([r1.next(), r1.next()]).toEqual([r2.next(), r2.next()]);
    expect(buf.every((v) => Math.abs(v) < 4)).toBe(true); // piecewise-linear quantiles end near 3.5 sigma
  });

  it('refuses a non-empty output directory without force', () => {
    const err = caught(() => writeRandomCheckpoint(configPath, hfF32, { dtype: 'f32', seed: 9 }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain('already holds a different checkpoint');
    writeRandomCheckpoint(configPath, path.join(tmp, 'again'), { dtype: 'f16', seed: 9, force: true });
    expect(openCheckpoint(path.join(tmp, 'again')).info('vpm.norm.bias').dtype).toBe('F16');
    expect(leftovers()).toEqual([]);
  });
});

const realIndex = shared('reference', 'model.safetensors.index.json');
describe.skipIf(unmet(realIndex))(named('real config sharding', realIndex), () => {
  it('state_dict order + 5 GB shards reproduce the real index shard by shard', () => {
    const real = loadConfig(path.join(reference, 'config.json'));
    const index = JSON.parse(fs.readFileSync(path.join(reference, 'model.safetensors.index.json'), 'utf8'));
    const shards = planShards(hfStateDictOrder(real).map((t) => ({ key: t.key, bytes: numel(t.shape) * 2 })), 5e9);
    expect(shards.length).toBe(2);
    const planned: Record<string, string> = {};
    shards.forEach((keys, i) => { for (const k of keys) planned[k] = shardName(i, 2); });
    expect(planned).toEqual(index.weight_map);
    // Converted layout in bf16: vision, resampler, and the ~6 GB LLM split in two files under 4 GB.
    const files = planConvertedFiles(expectedTensors(real), 2, 4e9);
    expect(files.map((f) => f.name)).toEqual(['vision.safetensors', 'resampler.safetensors',
      'llm-00001-of-00002.safetensors', 'llm-00002-of-00002.safetensors']);
    expect(files[0].tensors.length).toBe(317);
    expect(files[1].tensors.length).toBe(14);
  });
});

describe('convertCheckpoint', () => {
  it('bf16 shards -> f32 converted layout: exact values, manifest checksums, files copied', () => {
    const out = path.join(tmp, 'conv-f32');
    const progress: number[] = [];
    const { manifest } = convertCheckpoint(hfBf16, out, { dtype: 'f32', onProgress: (d, t) => { progress.push(d); expect(t).toBe(64); } });
    expect(progress).toEqual([...Array(64).keys()].map((i) => i + 1));
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'llm.safetensors', MANIFEST_FILE,
      'resampler.safetensors', 'tokenizer.model', 'vision.safetensors']);
    expect(fs.readFileSync(path.join(out, 'tokenizer.model'), 'utf8')).toBe('not a real tokenizer, copied verbatim');
    for (const f of manifest.files) {
      expect(f.sha256).toBe(sha256(path.join(out, f.name)));
      expect(f.bytes).toBe(fs.statSync(path.join(out, f.name)).size);
    }
    expect(manifest.dtype).toBe('f32');
    expect(manifest.tensors['vpm.pos_embed']).toBe('vision.safetensors');
    expect(manifest.tensors['resampler.proj']).toBe('resampler.safetensors');
    expect(manifest.tensors['llm.lm_head.weight']).toBe('llm.safetensors');
    verifyConvertedCheckpoint(out);

    const src = openCheckpoint(hfBf16);
    const dst = openCheckpoint(out);
    expect(dst.layout).toBe('converted');
    expect([...dst.keys()].sort()).toEqual(expectedTensors(cfg).map((t) => t.key).sort());
    for (const f of manifest.files.filter((x) => x.name.endsWith('.safetensors'))) {
      const file = SafetensorsFile.open(path.join(out, f.name));
      expectAlignedLayout(file, expectedTensors(cfg).map((t) => t.key).filter((k) => manifest.tensors[k] === f.name));
      file.close();
    }
    for (const k of src.keys()) {
      expect(dst.info(k).dtype).toBe('F32');
      expect(dst.info(k).shape).toEqual(src.info(k).shape);
      expect(dst.readFloat32(k)).toEqual(src.readFloat32(k)); // bf16 -> f32 is exact
    }
    validateCheckpoint(dst, cfg, { checkFinite: true });
    expect(dst.keys().length).toBe(64);
    src.close();
    dst.close();
    expect(leftovers()).toEqual([]);
  });

  it('f32 -> bf16 rounds to nearest even; llm sharded when over the limit; converting again is allowed', () => {
    const out = path.join(tmp, 'conv-bf16');
    const { manifest } = convertCheckpoint(hfF32, out, { dtype: 'bf16', llmShardBytes: 200_000 });
    const llmFiles = manifest.files.map((f) => f.name).filter((n) => n.startsWith('llm-'));
    expect(llmFiles.length).toBeGreaterThan(1);
    expect(llmFiles[0]).toBe(`llm-00001-of-${String(llmFiles.length).padStart(5, '0')}.safetensors`);
    const src = openCheckpoint(hfF32);
    const dst = openCheckpoint(out);
    for (const k of ['llm.model.layers.1.self_attn.o_proj.weight', 'vpm.patch_embed.proj.weight']) {
      const x = src.readFloat32(k);
      const y = dst.readFloat32(k);
      for (let i = 0; i < x.length; i++) if (y[i] !== bf16ToF32Value(f32ToBf16Value(x[i]))) throw new Error(`${k}[${i}]`);
    }
    src.close();
    dst.close();
    // Same source and dtype again: not "a different checkpoint", so no force needed.
    convertCheckpoint(hfF32, out, { dtype: 'bf16', llmShardBytes: 200_000 });
    // A converted checkpoint converts again (f16 from the bf16 one) and stays readable.
    const again = path.join(tmp, 'conv-f16');
    convertCheckpoint(out, again, { dtype: 'f16' });
    expect(openCheckpoint(again).manifest?.dtype).toBe('f16');
    expect(leftovers()).toEqual([]);
  });

  it('refuses an output dir holding a different checkpoint unless force; never deletes foreign files', () => {
    const out = path.join(tmp, 'conv-f32'); // made from hfBf16 above
    const err = caught(() => convertCheckpoint(hfF32, out, { dtype: 'f32' }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(`${out}: output directory already holds a different checkpoint`);
    expect(openCheckpoint(out).manifest?.source.files.length).toBeGreaterThan(1); // untouched
    convertCheckpoint(hfF32, out, { dtype: 'f32', force: true });
    expect(openCheckpoint(out).manifest?.source.files).toEqual([{ name: 'model.safetensors', bytes: fs.statSync(path.join(hfF32, 'model.safetensors')).size }]);
    const home = path.join(tmp, 'user-stuff');
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, 'notes.txt'), 'keep me');
    const err2 = caught(() => convertCheckpoint(hfF32, home, { dtype: 'f32', force: true }));
    expect(err2.message).toContain('notes.txt');
    expect(err2.message).toContain('even with force');
    expect(fs.readFileSync(path.join(home, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(leftovers()).toEqual([]);
  });

  it('bad inputs: clear errors and nothing written', () => {
    const out = path.join(tmp, 'fresh', 'nested', 'never'); // parents made for the output are removed on failure
    const missing = caught(() => convertCheckpoint(path.join(tmp, 'no-such-dir'), out, { dtype: 'f32' }));
    expect(missing).toBeInstanceOf(CheckpointError);
    expect(missing.message).toContain('no-such-dir: input checkpoint directory does not exist');

    // NaN deep inside: validation of structure passes, the error comes while writing; nothing is left.
    const nanDir = path.join(tmp, 'nan-src');
    fs.mkdirSync(nanDir);
    fs.copyFileSync(configPath, path.join(nanDir, 'config.json'));
    const src = openCheckpoint(hfF32);
    const tensors = expectedTensors(cfg).map((t) => {
      const data = src.readFloat32(t.key);
      if (t.key === 'llm.model.layers.1.mlp.down_proj.weight') data[5] = Infinity;
      return { name: t.key, dtype: 'F32' as const, shape: t.shape, data };
    });
    src.close();
    writeSafetensors(path.join(nanDir, 'model.safetensors'), tensors);
    const nan = caught(() => convertCheckpoint(nanDir, out, { dtype: 'bf16' }));
    expect(nan).toBeInstanceOf(WeightsError);
    expect(nan.message).toContain('llm.model.layers.1.mlp.down_proj.weight: 1 non-finite value(s), first Infinity at flat index 5');
    expect(fs.existsSync(out)).toBe(false);

    // f16 overflow is refused rather than written as Inf.
    const bigDir = path.join(tmp, 'big-src');
    fs.mkdirSync(bigDir);
    fs.copyFileSync(configPath, path.join(bigDir, 'config.json'));
    tensors.find((t) => t.name === 'llm.model.layers.1.mlp.down_proj.weight')!.data[5] = 1e5;
    writeSafetensors(path.join(bigDir, 'model.safetensors'), tensors);
    expect(caught(() => convertCheckpoint(bigDir, out, { dtype: 'f16' })).message).toContain('value 100000 at flat index 5 overflows f16');
    expect(fs.existsSync(out)).toBe(false);

    // Missing tensor vs config: the strict loader's message.
    const lessDir = path.join(tmp, 'less-src');
    fs.mkdirSync(lessDir);
    fs.copyFileSync(configPath, path.join(lessDir, 'config.json'));
    writeSafetensors(path.join(lessDir, 'model.safetensors'), tensors.filter((t) => t.name !== 'resampler.proj'));
    expect(caught(() => convertCheckpoint(lessDir, out, { dtype: 'f32' })).message).toContain('missing resampler.proj: expected shape [128, 128]');
    expect(fs.existsSync(path.join(tmp, 'fresh'))).toBe(false);
    expect(caught(() => convertCheckpoint(hfF32, hfF32, { dtype: 'f32' })).message).toContain('must differ from the input');
    expect(leftovers()).toEqual([]);
  });

  it('a converted file that was changed is caught by size and by checksum', () => {
    const out = path.join(tmp, 'tamper');
    convertCheckpoint(hfF32, out, { dtype: 'f32' });
    const p = path.join(out, 'resampler.safetensors');
    const bytes = fs.readFileSync(p);
    bytes[bytes.length - 1] ^= 1; // same size, different content
    fs.writeFileSync(p, bytes);
    expect(caught(() => verifyConvertedCheckpoint(out)).message).toMatch(/resampler\.safetensors: sha256 .* differs from the manifest/);
    fs.appendFileSync(p, 'x');
    expect(caught(() => openCheckpoint(out)).message).toContain('differs from the manifest');
    fs.rmSync(path.join(out, 'vision.safetensors'));
    expect(caught(() => openCheckpoint(out)).message).toContain('"vision.safetensors", which is missing');
  });
});
