// Comparing two activation files (safetensors) key by key with compare.ts's metrics: A is the actual
// file, B the expected one; keys in model order; the first failing key named.
import fs from 'node:fs';
import { SafetensorsFile, type STDtype } from '../weights/safetensors.ts';
import {
  CompareError, compareTensors, emptyResult, numel, shapeNote, type Data, type KeyResult, type TensorCompareOptions,
} from './compare.ts';
import { compileGlobs, GlobError, modelOrder } from './globs.ts';
import { POLICY, isIntegerKeyName, toleranceFor, type Tolerance } from './tolerances.ts';

export interface CompareOptions {
  /** Override every stage's rtol / atol. */
  rtol?: number;
  atol?: number;
  /** Comma-separated globs (globs.ts) selecting keys; default all. */
  keys?: string | string[];
  /** Keys present in one file only make the comparison fail. */
  strict?: boolean;
}

export interface CompareResult {
  fileA: string;
  fileB: string;
  policy: string;
  override: Partial<Tolerance>;
  keySelection: string[];
  results: KeyResult[];
  onlyInA: string[];
  onlyInB: string[];
  firstFailure: string | null;
  compared: number;
  passed: number;
  failed: number;
  strict: boolean;
  /** All compared keys pass, at least one was compared, and (strict) no key is in one file only. */
  ok: boolean;
}

const INTEGER_DTYPES = new Set<STDtype>(['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

function open(path: string, label: string): SafetensorsFile {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    throw new CompareError(`${label} file ${path}: no such file`);
  }
  if (!st.isFile()) throw new CompareError(`${label} file ${path}: not a regular file`);
  return SafetensorsFile.open(path); // a SafetensorsError names the file and what is wrong with it
}

function checkTolerance(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new CompareError(`${name} must be a finite number >= 0, got ${v}`);
}

/** Compare every selected key of A (actual) against B (expected). */
export function compareFiles(pathA: string, pathB: string, opts: CompareOptions = {}): CompareResult {
  checkTolerance('rtol', opts.rtol);
  checkTolerance('atol', opts.atol);
  const selection = (typeof opts.keys === 'string' ? [opts.keys] : opts.keys ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  let select: (key: string) => boolean;
  try {
    select = compileGlobs(selection);
  } catch (e) {
    if (e instanceof GlobError) throw new CompareError(e.message);
    throw e;
  }
  const override: Partial<Tolerance> = {};
  if (opts.rtol !== undefined) override.rtol = opts.rtol;
  if (opts.atol !== undefined) override.atol = opts.atol;
  const fa = open(pathA, 'A');
  let fb: SafetensorsFile | undefined;
  try {
    fb = open(pathB, 'B');
    const keysA = fa.keys().filter(select);
    const keysB = fb.keys().filter(select);
    if (selection.length > 0 && keysA.length + keysB.length === 0) {
      throw new CompareError(`key globs "${selection.join(',')}" select none of the ${fa.keys().length} keys of A and ${fb.keys().length} keys of B`);
    }
    const inB = new Set(keysB);
    const inA = new Set(keysA);
    const results: KeyResult[] = [];
    for (const key of modelOrder(keysA.filter((k) => inB.has(k)))) results.push(compareKey(fa, fb, key, override));
    const failed = results.filter((r) => !r.pass);
    const onlyInA = modelOrder(keysA.filter((k) => !inB.has(k)));
    const onlyInB = modelOrder(keysB.filter((k) => !inA.has(k)));
    const strict = opts.strict ?? false;
    return {
      fileA: pathA, fileB: pathB, policy: POLICY, override, keySelection: selection, results, onlyInA, onlyInB,
      firstFailure: failed[0]?.key ?? null, compared: results.length, passed: results.length - failed.length,
      failed: failed.length, strict,
      ok: results.length > 0 && failed.length === 0 && (!strict || onlyInA.length + onlyInB.length === 0),
    };
  } finally {
    fa.close();
    fb?.close();
  }
}

function compareKey(fa: SafetensorsFile, fb: SafetensorsFile, key: string, override: Partial<Tolerance>): KeyResult {
  const ia = fa.info(key);
  const ib = fb.info(key);
  const integer = INTEGER_DTYPES.has(ia.dtype) || INTEGER_DTYPES.has(ib.dtype) || isIntegerKeyName(key);
  const read = (f: SafetensorsFile, dtype: STDtype): Data => (integer && INTEGER_DTYPES.has(dtype) ? f.readInt32(key) : f.readFloat32(key));
  const tol = toleranceFor(key, override);
  const opts: TensorCompareOptions = { integer, dtypeA: ia.dtype, dtypeB: ib.dtype };
  if (numel(ia.shape) !== numel(ib.shape) && !integer) {
    // Do not read data that cannot be compared (a mismatched logits tensor can be hundreds of MB).
    const r = emptyResult(key, ia.shape, ib.shape, 'float', tol, opts);
    r.status = 'FAIL(shape)';
    r.pass = false;
    r.notes.push(shapeNote(ia.shape, ib.shape));
    return r;
  }
  return compareTensors(key, read(fa, ia.dtype), read(fb, ib.dtype), ia.shape, ib.shape, tol, opts);
}
