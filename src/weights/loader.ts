// Strict loading (STYLE §3): the expected key list and shapes come from the config; a checkpoint must hold
// exactly those tensors, with exactly those shapes, in a float dtype. This is the one place that checks it:
// every problem is collected, and the error is one line with the count and the first problems (all of
// them in `WeightsError.problems`, which the CLI prints under --verbose).
import { expectedTensors, type MiniCPMVConfig } from '../config.ts';
import { UserError } from '../errors.ts';
import type { STDtype, TensorLocation } from './safetensors.ts';

/** A checkpoint that does not fit the config; `details` lists every problem (the message names the first few). */
export class WeightsError extends UserError {}

/** Anything that yields float32 tensors by checkpoint key (a safetensors file, a sharded checkpoint). */
export interface TensorSource {
  /** Where the tensors come from, for messages (a checkpoint directory). */
  readonly dir?: string;
  keys(): string[];
  has(key: string): boolean;
  info(key: string): { shape: number[]; dtype: STDtype };
  readFloat32(key: string): Float32Array;
  /** The file holding a tensor, for messages. */
  fileOf?(key: string): string;
  /** Where the tensor's bytes are in an open, validated file, so the native reader can load it without JavaScript. */
  location?(key: string): TensorLocation;
}

/** `--weights-dtype`: 'auto' keeps weight matrices in their checkpoint dtype where the native kernels run; 'f32' widens all. */
export const WEIGHTS_DTYPE_OPTIONS = ['auto', 'f32'] as const;
export type WeightsDtypeOption = (typeof WEIGHTS_DTYPE_OPTIONS)[number];

/** Which towers a model holds: 'vision' is `vpm.*` and `resampler.*` only. */
export type ModelParts = 'all' | 'vision';

const FLOAT_DTYPES: ReadonlySet<STDtype> = new Set(['F32', 'F16', 'BF16', 'F64']);
const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;
/** A checkpoint file's name without its directory, for messages. */
export const baseName = (file: string) => file.slice(file.lastIndexOf('/') + 1);

export interface ValidateOptions {
  /** 'vision': the llm tensors may be absent (they are then not loaded). Default 'all'. */
  parts?: ModelParts;
  /** Also read every tensor and reject NaN/Inf (reads the whole checkpoint). */
  checkFinite?: boolean;
  /** How many problems the error message names before "and N more" (default 3). */
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

function report(src: TensorSource, problems: string[], maxListed: number): never {
  const listed = problems.slice(0, maxListed).join('; ');
  const more = problems.length > maxListed ? `; and ${problems.length - maxListed} more (--verbose lists them all)` : '';
  throw new WeightsError(`${src.dir ?? 'checkpoint'}: checkpoint does not match the config (${problems.length} problem(s)): ${listed}${more}`, problems);
}

/**
 * Check tensors against the config: missing, unexpected, wrongly shaped and non-float tensors (and, with
 * `checkFinite`, NaN/Inf values). Throws one WeightsError naming the first problems.
 */
export function validateCheckpoint(src: TensorSource, cfg: MiniCPMVConfig, opts: ValidateOptions = {}): void {
  const maxListed = opts.maxListed ?? 3;
  const expected = expectedTensors(cfg);
  const wanted = expected.filter((t) => opts.parts !== 'vision' || t.role !== 'llm');
  const where = (key: string) => (src.fileOf ? ` (in ${baseName(src.fileOf(key))})` : '');
  const problems: string[] = [];
  for (const t of wanted) {
    if (!src.has(t.key)) {
      problems.push(`missing ${t.key}: expected shape ${shapeStr(t.shape)}`);
      continue;
    }
    const info = src.info(t.key);
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
      problems.push(`wrong shape ${t.key}: expected ${shapeStr(t.shape)}, checkpoint has ${shapeStr(info.shape)}${where(t.key)}`);
    }
    if (!FLOAT_DTYPES.has(info.dtype)) {
      problems.push(`wrong dtype ${t.key}: ${info.dtype}, expected a float dtype (F32, F16, BF16, F64)`);
    }
  }
  const expectedKeys = new Set(expected.map((t) => t.key));
  for (const key of src.keys()) {
    if (!expectedKeys.has(key)) {
      problems.push(`unexpected ${key}: shape ${shapeStr(src.info(key).shape)} is not part of this config's model${where(key)}`);
    }
  }
  if (problems.length > 0) report(src, problems, maxListed);
  if (opts.checkFinite) {
    for (const t of wanted) {
      const bad = findNonFinite(src.readFloat32(t.key));
      if (bad) problems.push(nonFiniteMessage(t.key, src.fileOf ? baseName(src.fileOf(t.key)) : t.key, bad));
    }
    if (problems.length > 0) report(src, problems, maxListed);
  }
}
