// HF checkpoint -> this project's converted layout (docs/weights.md): one file per tower, chosen dtype,
// same tensor names and layouts (no renaming, no transposes: STYLE §2), a manifest with checksums.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expectedTensors, type ExpectedTensor } from '../config.ts';
import { loadConfig } from '../config_file.ts';
import {
  CheckpointError, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, openCheckpoint, readManifest, type Checkpoint,
  type Manifest,
} from './checkpoint.ts';
import { findNonFinite, nonFiniteMessage, validateCheckpoint, WeightsError } from './loader.ts';
import { stageOutputDir } from './outdir.ts';
import { checkShardBytes, planShards, shardName } from './shards.ts';
import { DTYPE_BYTES, numel } from './safetensors.ts';
import { alignedOrder, SafetensorsWriter, type WriteDtype } from './safetensors_writer.ts';

export type ConvertDtype = 'f32' | 'f16' | 'bf16';

export interface ConvertOptions {
  dtype: ConvertDtype;
  /** Replace an output directory that holds a different checkpoint. */
  force?: boolean;
  /** Called after each tensor: tensors done, tensors in all, the tensor's key. */
  onProgress?: (done: number, total: number, key: string) => void;
  /** Largest llm file before it is split into llm-0000k-of-0000N (default 4e9 bytes). */
  llmShardBytes?: number;
}

export interface ConvertResult { outDir: string; manifest: Manifest }

/** Small files copied next to the weights when present. */
export const COPIED_FILES = ['config.json', 'generation_config.json', 'tokenizer.model', 'tokenizer_config.json',
  'special_tokens_map.json'];

const WRITE_DTYPE: Record<ConvertDtype, WriteDtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const F16_MAX_ROUNDED = 65520; // |x| >= 65520 rounds to Inf in binary16

/**
 * Where each group of tensors goes. Order of files and of tensors inside them: model order, but in each file the
 * tensors whose bytes are not a multiple of 64 last (alignedOrder: every other one starts 64-byte aligned).
 */
export function planConvertedFiles(tensors: ExpectedTensor[], elemBytes: number, llmShardBytes: number):
  { name: string; tensors: ExpectedTensor[] }[] {
  const aligned = (ts: ExpectedTensor[]) => alignedOrder(ts, (t) => numel(t.shape) * elemBytes);
  const vision = aligned(tensors.filter((t) => t.role === 'vision'));
  const resampler = aligned(tensors.filter((t) => t.role === 'resampler'));
  const llm = new Map(tensors.filter((t) => t.role === 'llm').map((t) => [t.key, t]));
  const shards = planShards([...llm.values()].map((t) => ({ key: t.key, bytes: numel(t.shape) * elemBytes })), llmShardBytes);
  const llmFiles = shards.map((keys, i) => ({
    name: shards.length === 1 ? 'llm.safetensors' : shardName(i, shards.length, 'llm'),
    tensors: aligned(keys.map((k) => llm.get(k)!)),
  }));
  return [{ name: 'vision.safetensors', tensors: vision }, { name: 'resampler.safetensors', tensors: resampler }, ...llmFiles];
}

/** Identity of the source: config bytes plus each tensor file's name and size. */
function sourceFingerprint(hfDir: string, ckpt: Checkpoint): Manifest['source'] {
  const configSha256 = createHash('sha256').update(fs.readFileSync(path.join(hfDir, 'config.json'))).digest('hex');
  const files = ckpt.files.map((f) => ({ name: path.basename(f.path), bytes: fs.statSync(f.path).size }));
  return { configSha256, files };
}

/**
 * Convert an HF checkpoint directory (sharded, single-file, or already converted) to the converted layout.
 * Validates against config.json first (strict loader), checks every value is finite (and fits f16 when
 * converting to f16), writes into a temporary directory beside `outDir` and renames it at the end: a failed
 * conversion leaves nothing behind.
 */
export function convertCheckpoint(hfDir: string, outDir: string, opts: ConvertOptions): ConvertResult {
  const dtype = WRITE_DTYPE[opts.dtype];
  if (!dtype) throw new CheckpointError(`convert: dtype must be f32, f16 or bf16, got ${JSON.stringify(opts.dtype)}`);
  if (!fs.existsSync(hfDir) || !fs.statSync(hfDir).isDirectory()) {
    throw new CheckpointError(`${hfDir}: input checkpoint directory does not exist`);
  }
  if (path.resolve(hfDir) === path.resolve(outDir)) throw new CheckpointError(`${outDir}: output directory must differ from the input`);
  if (opts.llmShardBytes !== undefined) checkShardBytes(opts.llmShardBytes, 'convert: llmShardBytes');
  const cfg = loadConfig(path.join(hfDir, 'config.json'));
  const ckpt = openCheckpoint(hfDir);
  try {
    validateCheckpoint(ckpt, cfg);
    const source = sourceFingerprint(hfDir, ckpt);
    const isSame = (dir: string) => {
      try {
        const m = readManifest(dir);
        return m.dtype === opts.dtype && JSON.stringify(m.source) === JSON.stringify(source);
      } catch {
        return false;
      }
    };
    const staged = stageOutputDir(outDir, { force: opts.force, isSame, what: 'the converted checkpoint' });
    try {
      const manifest = writeConverted(ckpt, expectedTensors(cfg), staged.tmp, opts, source);
      for (const f of COPIED_FILES) {
        const from = path.join(hfDir, f);
        const st = fs.statSync(from, { throwIfNoEntry: false });
        if (!st) continue;
        // A named pipe would block the copy; a device would copy without end.
        if (!st.isFile()) throw new CheckpointError(`${from} is not a regular file; refusing to copy it`);
        fs.copyFileSync(from, path.join(staged.tmp, f));
      }
      // The manifest goes last: its presence marks a complete converted checkpoint.
      fs.writeFileSync(path.join(staged.tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
      staged.commit();
      return { outDir, manifest };
    } catch (e) {
      staged.cleanup();
      throw e;
    }
  } finally {
    ckpt.close();
  }
}

function writeConverted(ckpt: Checkpoint, tensors: ExpectedTensor[], dir: string, opts: ConvertOptions,
  source: Manifest['source']): Manifest {
  const dtype = WRITE_DTYPE[opts.dtype];
  const plan = planConvertedFiles(tensors, DTYPE_BYTES[dtype], opts.llmShardBytes ?? 4e9);
  const files: Manifest['files'] = [];
  const map: Record<string, string> = {};
  let done = 0;
  for (const file of plan) {
    const w = new SafetensorsWriter(path.join(dir, file.name),
      file.tensors.map((t) => ({ name: t.key, dtype, shape: t.shape })),
      { format: 'pt', 'minicpmv.dtype': opts.dtype }, { sha256: true });
    try {
      for (const t of file.tensors) {
        const data = ckpt.readFloat32(t.key);
        const bad = findNonFinite(data);
        if (bad) throw new WeightsError(`${ckpt.dir}: ${nonFiniteMessage(t.key, path.basename(ckpt.fileOf(t.key)), bad)}`);
        if (dtype === 'F16') checkF16Range(ckpt, t.key, data);
        w.writeTensor(t.key, data);
        map[t.key] = file.name;
        opts.onProgress?.(++done, tensors.length, t.key);
      }
      w.close();
    } catch (e) {
      w.abort();
      throw e;
    }
    files.push({ name: file.name, bytes: w.bytesWritten, sha256: w.sha256(), tensors: file.tensors.length });
  }
  return { format: MANIFEST_FORMAT, formatVersion: MANIFEST_VERSION, dtype: opts.dtype, source, files, tensors: map };
}

function checkF16Range(ckpt: Checkpoint, key: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (Math.abs(data[i]) >= F16_MAX_ROUNDED) {
      throw new WeightsError(`${ckpt.dir}: ${key}: value ${data[i]} at flat index ${i} overflows f16 (max 65504); convert to bf16 or f32 instead`);
    }
  }
}

/** Recompute every file's sha256 and size against the manifest (reads the whole checkpoint). */
export function verifyConvertedCheckpoint(dir: string): void {
  const m = readManifest(dir);
  for (const f of m.files) {
    const p = path.join(dir, f.name);
    if (!fs.existsSync(p)) throw new CheckpointError(`${p}: listed in ${MANIFEST_FILE} but missing`);
    const h = createHash('sha256');
    const fd = fs.openSync(p, 'r');
    const buf = new Uint8Array(1 << 24);
    let pos = 0;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.byteLength, pos);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (pos !== f.bytes) throw new CheckpointError(`${p}: ${pos} bytes, manifest says ${f.bytes}`);
    const got = h.digest('hex');
    if (got !== f.sha256) throw new CheckpointError(`${p}: sha256 ${got} differs from the manifest's ${f.sha256}`);
  }
}
