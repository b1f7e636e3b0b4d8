import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedTensors, parseConfig, tinyConfigJson, type MiniCPMVConfig } from '../src/config.ts';
import { loadConfig } from '../src/config_file.ts';
import { CheckpointError, INDEX_FILE, openCheckpoint } from '../src/weights/checkpoint.ts';
import { validateCheckpoint, WeightsError } from '../src/weights/loader.ts';
import { loadModel } from '../src/model/load.ts';
import { initBackend } from '../src/backend/index.ts';
import { writeRandomCheckpoint } from '../src/weights/random.ts';
import { SafetensorsError, SafetensorsFile } from '../src/weights/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tinyGolden = path.resolve(repoRoot, '..', 'shared', 'golden', 'tiny-a');
const goldenTiny = shared('golden', 'tiny-a', 'model.safetensors');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loader-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const configPath = path.join(tmp, 'config.json');
const single = path.join(tmp, 'single');
const sharded = path.join(tmp, 'sharded');
let cfg: MiniCPMVConfig;
let good: Map<string, Float32Array>;

beforeAll(() => {
  fs.writeFileSync(configPath, JSON.stringify(tinyConfigJson()));
  cfg = loadConfig(configPath);
  writeRandomCheckpoint(configPath, single, { dtype: 'f32', seed: 7 });
  writeRandomCheckpoint(configPath, sharded, { dtype: 'f32', seed: 7, shardBytes: 1_000_000 });
  const ckpt = openCheckpoint(single);
  good = new Map(ckpt.keys().map((k) => [k, ckpt.readFloat32(k)]));
  ckpt.close();
});

/** A single-file checkpoint from `good` with edits; returns its directory. */
function variant(name: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.copyFileSync(configPath, path.join(dir, 'config.json'));
  const ts = expectedTensors(cfg).map((t): TensorToWrite => ({ name: t.key, dtype: 'F32', shape: t.shape, data: good.get(t.key)! }));
  writeSafetensors(path.join(dir, 'model.safetensors'), edit(ts));
  return dir;
}

function caught(fn: () => unknown): Error {
  try { fn(); } catch (e) { return e as Error; }
  throw new Error('expected an error');
}

describe('opening checkpoints', () => {
  it('single file and sharded layouts expose the same tensors', () => {
    const a = openCheckpoint(single);
    const b = openCheckpoint(sharded);
    expect(a.layout).toBe('hf-single');
    expect(b.layout).toBe('hf-sharded');
    expect(b.files.length).toBe(3); // 2.5 MB of f32 in shards of <= 1 MB
    expect(b.keys().sort()).toEqual(a.keys().sort());
    // Same seed: values do not depend on sharding.
    for (const k of a.keys()) expect(b.readFloat32(k)).toEqual(a.readFloat32(k));
    expect(b.info('llm.lm_head.weight').shape).toEqual([512, 128]);
    expect(path.basename(b.fileOf('llm.model.embed_tokens.weight'))).toBe('model-00001-of-00003.safetensors');
    validateCheckpoint(a, cfg, { checkFinite: true });
    validateCheckpoint(b, cfg);
    a.close();
    b.close();
  });

  it('loadModel holds every expected tensor equal to a direct file read, in model order', async () => {
    await initBackend();
    const model = loadModel(sharded);
    expect(model.cfg.llm.hidden).toBe(128);
    expect(model.params.keys().filter((k) => !k.includes('#'))).toEqual(expectedTensors(cfg).map((t) => t.key));
    const f = SafetensorsFile.open(path.join(single, 'model.safetensors'));
    for (const k of f.keys()) {
      const t = model.params.get(k);
      expect(t.shape).toEqual(f.info(k).shape);
      expect(t.dataSync()).toEqual(f.readFloat32(k));
    }
    f.close();
    model.dispose();
  });

  it.skipIf(unmet(goldenTiny))(named('golden tiny-a passes the strict loader', goldenTiny), () => {
    const ckpt = openCheckpoint(tinyGolden);
    const c = loadConfig(path.join(tinyGolden, 'config.json'));
    validateCheckpoint(ckpt, c, { checkFinite: true });
    expect(ckpt.keys().length).toBe(64);
    expect(c.vision.embedDim).toBe(96);
    ckpt.close();
  });
});

describe('strict validation reports every problem with key and shapes', () => {
  it('missing, unexpected and wrongly shaped tensors are listed together', () => {
    const dir = variant('mixed', (ts) => [
      ...ts.filter((t) => t.name !== 'llm.model.norm.weight')
        .map((t) => t.name === 'vpm.blocks.1.mlp.fc1.weight' ? { ...t, shape: [32, 119] } : t),
      { name: 'vpm.blocks.2.norm1.weight', dtype: 'F32', shape: [32], data: new Float32Array(32) },
    ]);
    const ckpt = openCheckpoint(dir);
    const err = caught(() => validateCheckpoint(ckpt, cfg));
    expect(err).toBeInstanceOf(WeightsError);
    expect(err.message).toContain(dir);
    expect(err.message).toContain('3 problem(s)');
    expect(err.message).toContain('missing llm.model.norm.weight: expected shape [128]');
    expect(err.message).toContain('wrong shape vpm.blocks.1.mlp.fc1.weight: expected [119, 32], checkpoint has [32, 119]');
    expect(err.message).toContain('unexpected vpm.blocks.2.norm1.weight');
    expect(err.message.split('\n').length).toBe(1);
    expect((err as WeightsError).details.length).toBe(3);
    ckpt.close();
    expect(() => loadModel(dir)).toThrow(WeightsError);
  });

  it('long problem lists are cut after maxListed', () => {
    const dir = variant('empty-llm', (ts) => ts.filter((t) => !t.name.startsWith('llm.')));
    const ckpt = openCheckpoint(dir);
    const n = expectedTensors(cfg).filter((t) => t.role === 'llm').length;
    const err = caught(() => validateCheckpoint(ckpt, cfg, { maxListed: 3 }));
    expect(err.message).toContain(`${n} problem(s)`);
    expect(err.message).toContain(`; and ${n - 3} more (--verbose lists them all)`);
    expect(err.message.split('; ').length).toBe(4);
    expect(err.message.split('\n').length).toBe(1);
    expect((err as WeightsError).details.length).toBe(n);
    ckpt.close();
  });

  it('integer dtype for a weight is rejected', () => {
    const dir = variant('int', (ts) => ts.map((t) => t.name === 'vpm.norm.weight'
      ? { ...t, dtype: 'I32', data: new Int32Array(32) } : t));
    const ckpt = openCheckpoint(dir);
    expect(caught(() => validateCheckpoint(ckpt, cfg)).message).toContain('wrong dtype vpm.norm.weight: I32');
    ckpt.close();
  });

  it('NaN and Inf are reported with the key when checkFinite', () => {
    const dir = variant('nan', (ts) => ts.map((t) => {
      if (t.name === 'llm.model.layers.1.mlp.up_proj.weight') {
        const d = Float32Array.from(t.data as Float32Array);
        d[77] = NaN;
        d[90] = NaN;
        return { ...t, data: d };
      }
      if (t.name === 'resampler.query') {
        const d = Float32Array.from(t.data as Float32Array);
        d[3] = -Infinity;
        return { ...t, data: d };
      }
      return t;
    }));
    const ckpt = openCheckpoint(dir);
    validateCheckpoint(ckpt, cfg); // structure is fine
    const err = caught(() => validateCheckpoint(ckpt, cfg, { checkFinite: true }));
    expect(err.message).toContain('llm.model.layers.1.mlp.up_proj.weight: 2 non-finite value(s), first NaN at flat index 77');
    expect(err.message).toContain('resampler.query: 1 non-finite value(s), first -Infinity at flat index 3');
    // loadModel checks every value as it reads it, and stops at the first tensor that is not finite.
    const err2 = caught(() => loadModel(dir));
    expect(err2).toBeInstanceOf(WeightsError);
    expect((err2 as WeightsError).details.join('\n')).toContain('resampler.query: 1 non-finite value(s), first -Infinity at flat index 3');
    ckpt.close();
  });

  it('a config that does not match (different tiny sizes) fails on shapes', () => {
    const other = parseConfig(tinyConfigJson({ intermediate_size: 384 }));
    const ckpt = openCheckpoint(single);
    const err = caught(() => validateCheckpoint(ckpt, other));
    expect(err.message).toContain('wrong shape llm.model.layers.0.mlp.gate_proj.weight: expected [384, 128], checkpoint has [256, 128]');
    ckpt.close();
  });
});

describe('broken directories give CheckpointError naming the file', () => {
  function copyDir(from: string, name: string): string {
    const dir = path.join(tmp, name);
    fs.cpSync(from, dir, { recursive: true });
    return dir;
  }

  it('missing directory, empty directory', () => {
    const missing = path.join(tmp, 'does-not-exist');
    const e1 = caught(() => openCheckpoint(missing));
    expect(e1).toBeInstanceOf(CheckpointError);
    expect(e1.message).toContain(`${missing}: checkpoint directory does not exist`);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    expect(caught(() => openCheckpoint(empty)).message).toMatch(/no checkpoint found .*model\.safetensors\.index\.json/);
    expect(caught(() => loadModel(empty)).message).toContain('config.json');
  });

  it('missing shard named by the index', () => {
    const dir = copyDir(sharded, 'missing-shard');
    fs.rmSync(path.join(dir, 'model-00003-of-00003.safetensors'));
    const err = caught(() => openCheckpoint(dir));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(INDEX_FILE);
    expect(err.message).toContain('"model-00003-of-00003.safetensors", which is missing');
  });

  it('index that maps a key to the wrong shard, or omits a key a shard holds', () => {
    const dir = copyDir(sharded, 'bad-map');
    const ip = path.join(dir, INDEX_FILE);
    const index = JSON.parse(fs.readFileSync(ip, 'utf8'));
    index.weight_map['vpm.norm.weight'] = 'model-00001-of-00003.safetensors';
    fs.writeFileSync(ip, JSON.stringify(index));
    expect(caught(() => openCheckpoint(dir)).message).toContain('maps tensor "vpm.norm.weight" to "model-00001-of-00003.safetensors", but that file has no such tensor');
    delete index.weight_map['vpm.norm.weight'];
    fs.writeFileSync(ip, JSON.stringify(index));
    expect(caught(() => openCheckpoint(dir)).message).toMatch(/holds tensor "vpm\.norm\.weight", which .* does not list/);
    index.weight_map['x'] = '../escape.safetensors';
    fs.writeFileSync(ip, JSON.stringify(index));
    expect(caught(() => openCheckpoint(dir)).message).toContain('must be a file name in the same directory');
    fs.writeFileSync(ip, '{"weight_map": ');
    expect(caught(() => openCheckpoint(dir)).message).toContain('not valid JSON');
    // An index that is a named pipe is refused at once (reading it would block forever).
    fs.rmSync(ip);
    execFileSync('mkfifo', [ip]);
    const err = caught(() => openCheckpoint(dir));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(`${ip} is a named pipe, not a regular file`);
  });

  it('a truncated shard is a SafetensorsError naming the shard', () => {
    const dir = copyDir(sharded, 'truncated');
    const p = path.join(dir, 'model-00002-of-00003.safetensors');
    fs.truncateSync(p, fs.statSync(p).size - 10);
    const err = caught(() => openCheckpoint(dir));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err.message).toContain('model-00002-of-00003.safetensors');
    expect(err.message).toContain('out of range');
  });
});
