// Strict loading (STYLE §3): the expected key list and shapes come from the config; a checkpoint must hold
// exactly those tensors, with exactly those shapes, in a float dtype. All problems are collected and
// reported together so one run shows everything that is wrong.
import path from 'node:path';
import { expectedTensors, loadConfig, type MiniCPMVConfig } from '../config.ts';
import { openCheckpoint, type Checkpoint } from './checkpoint.ts';
import type { STDtype } from './safetensors.ts';

export class WeightsError extends Error {
  override name = 'WeightsError';
}

const FLOAT_DTYPES: ReadonlySet<STDtype> = new Set(['F32', 'F16', 'BF16', 'F64']);
const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

export interface ValidateOptions {
  /** Also read every tensor and reject NaN/Inf (reads the whole checkpoint). */
  checkFinite?: boolean;
  /** How many problems the error message lists before "... and N more" (default 12). */
  maxListed?: number;
}

/** The first non-finite value of a tensor, or undefined. */
export function findNonFinite(data: Float32Array): { index: number; value: number; count: number } | undefined {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) { // NaN or +-Inf (cheaper than Number.isFinite in the hot loop)
      if (first < 0) first = i;
      count++;
    }
  }
  return first < 0 ? undefined : { index: first, value: data[first], count };
}

export function nonFiniteMessage(key: string, file: string, bad: { index: number; value: number; count: number }): string {
  return `${key}: ${bad.count} non-finite value(s), first ${bad.value} at flat index ${bad.index} (in ${file})`;
}

function report(ckpt: Checkpoint, problems: string[], maxListed: number): never {
  const listed = problems.slice(0, maxListed).map((p) => `  - ${p}`);
  if (problems.length > maxListed) listed.push(`  ... and ${problems.length - maxListed} more`);
  throw new WeightsError(`${ckpt.dir}: checkpoint does not match the config (${problems.length} problem(s)):\n${listed.join('\n')}`);
}

/**
 * Check a checkpoint against the config: missing, unexpected, wrongly shaped and non-float tensors (and,
 * with `checkFinite`, NaN/Inf values). Throws one WeightsError listing the first problems.
 */
export function validateCheckpoint(ckpt: Checkpoint, cfg: MiniCPMVConfig, opts: ValidateOptions = {}): void {
  const maxListed = opts.maxListed ?? 12;
  const expected = expectedTensors(cfg);
  const problems: string[] = [];
  const expectedKeys = new Set(expected.map((t) => t.key));
  for (const t of expected) {
    if (!ckpt.has(t.key)) {
      problems.push(`missing ${t.key}: expected shape ${shapeStr(t.shape)}`);
      continue;
    }
    const info = ckpt.info(t.key);
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
      problems.push(`wrong shape ${t.key}: expected ${shapeStr(t.shape)}, checkpoint has ${shapeStr(info.shape)} (in ${path.basename(ckpt.fileOf(t.key))})`);
    }
    if (!FLOAT_DTYPES.has(info.dtype)) {
      problems.push(`wrong dtype ${t.key}: ${info.dtype}, expected a float dtype (F32, F16, BF16)`);
    }
  }
  for (const key of ckpt.keys()) {
    if (!expectedKeys.has(key)) {
      problems.push(`unexpected ${key}: shape ${shapeStr(ckpt.info(key).shape)} is not part of this config's model (in ${path.basename(ckpt.fileOf(key))})`);
    }
  }
  if (problems.length > 0) report(ckpt, problems, maxListed);
  if (opts.checkFinite) {
    for (const t of expected) {
      const bad = findNonFinite(ckpt.readFloat32(t.key));
      if (bad) problems.push(nonFiniteMessage(t.key, path.basename(ckpt.fileOf(t.key)), bad));
    }
    if (problems.length > 0) report(ckpt, problems, maxListed);
  }
}

/**
 * Stream tensors one at a time as float32 (the callback may upload and drop each array, so the checkpoint
 * is never held twice). With `checkFinite`, a NaN/Inf throws WeightsError naming the key before `cb` sees it.
 */
export function forEachTensor(ckpt: Checkpoint, keys: readonly string[],
  cb: (key: string, data: Float32Array, shape: number[]) => void, opts: { checkFinite?: boolean } = {}): void {
  for (const key of keys) {
    const data = ckpt.readFloat32(key);
    if (opts.checkFinite) {
      const bad = findNonFinite(data);
      if (bad) throw new WeightsError(`${ckpt.dir}: ${nonFiniteMessage(key, path.basename(ckpt.fileOf(key)), bad)}`);
    }
    cb(key, data, ckpt.info(key).shape);
  }
}

export interface LoadedWeights {
  cfg: MiniCPMVConfig;
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
}

/**
 * Open, validate and read a whole checkpoint as float32, in `expectedTensors` (model) order. The config
 * defaults to `<dir>/config.json`. Fine for tiny models; the model code should prefer `forEachTensor`.
 */
export function loadWeights(dir: string, cfg?: MiniCPMVConfig, opts: { checkFinite?: boolean } = {}): LoadedWeights {
  const config = cfg ?? loadConfig(path.join(dir, 'config.json'));
  const ckpt = openCheckpoint(dir);
  try {
    validateCheckpoint(ckpt, config);
    const tensors = new Map<string, Float32Array>();
    const shapes = new Map<string, number[]>();
    forEachTensor(ckpt, expectedTensors(config).map((t) => t.key), (key, data, shape) => {
      tensors.set(key, data);
      shapes.set(key, shape);
    }, opts);
    return { cfg: config, tensors, shapes };
  } finally {
    ckpt.close();
  }
}
