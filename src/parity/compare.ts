// Key-by-key comparison of two activation files (this project's `trace` against PyTorch forward hooks),
// in the spirit of llm.c's `check_tensor`: every key gets error statistics, the largest differences with
// their indices, NaN/Inf counts, and PASS/FAIL under the one policy of tolerances.ts.
//
// Convention: A is the actual file (the implementation under test), B the expected one (the reference).
// Relative errors, NMSE and KL are measured against B.
// This module holds the metrics and imports no Node module; compare_files.ts reads the files and
// format.ts writes the numbers for the CLI table and the HTML report.
import { isIntegerKeyName, type ResolvedTolerance, type Tolerance } from './tolerances.ts';
import { UserError } from '../errors.ts';

export class CompareError extends UserError {}

export type Status = 'PASS' | 'FAIL' | 'FAIL(shape)' | 'FAIL(nan)' | 'FAIL(inf)';

/** One element: its index in B's shape, both values and |a - e|. */
export interface Diff {
  index: number[];
  actual: number;
  expected: number;
  absDiff: number;
}

export interface LogitsStats {
  rows: number;
  /** Fraction of rows whose argmax agrees. */
  top1Agreement: number;
  /** Mean over rows of |top5(a) ∩ top5(e)| / 5. */
  top5Overlap: number;
  /** KL(softmax(e) || softmax(a)) in nats, mean and max over rows (and the row of the max). */
  klMean: number;
  klMax: number;
  klMaxRow: number;
}

export interface KeyResult {
  key: string;
  status: Status;
  pass: boolean;
  kind: 'float' | 'int';
  shapeA: number[];
  shapeB: number[];
  dtypeA: string;
  dtypeB: string;
  notes: string[];
  /** The tolerance applied (null for integer keys, which must match exactly). */
  tol: ResolvedTolerance | null;
  /** Elements compared, and how many are outside the tolerance (integer keys: how many differ). */
  count: number;
  violations: number;
  /** Statistics over elements finite on both sides (null where not computed: shape mismatch, integers). */
  maxAbs: number | null;
  meanAbs: number | null;
  /** max |a-e| / (|e| + atol/rtol): relative error with |e| floored at atol/rtol, so PASS <=> maxRel <= rtol. */
  maxRel: number | null;
  /** max |a-e| / max |e| (the golden README's per-key measure). */
  relToMax: number | null;
  /** sum (a-e)^2 / sum e^2, and 10 log10 of it. */
  nmse: number | null;
  nmseDb: number | null;
  /** Cosine similarity of rows (the last dimension of B's shape): mean, min, and the row of the min. */
  cosMean: number | null;
  cosMin: number | null;
  cosMinRow: number | null;
  /** The element most outside the tolerance, as a multiple of atol + rtol*|e| (> 1 fails). */
  worstRatio: number | null;
  worst: Diff | null;
  /** Float keys: the 5 largest nonzero |a-e| (non-finite first). Integer keys: the first 5 differing elements. */
  top: Diff[];
  nanA: number;
  infA: number;
  nanB: number;
  infB: number;
  logits?: LogitsStats;
}

export type Data = Float32Array | Int32Array;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export interface TensorCompareOptions {
  /** Compare exactly (token ids). Default: the key name decides (tolerances.ts INTEGER_KEYS). */
  integer?: boolean;
  dtypeA?: string;
  dtypeB?: string;
  /** Compute top-1 / top-5 / KL over rows. Default: key is `logits` or `llm.lm_head`. */
  logits?: boolean;
}

export const TOP_K = 5;

/** Row-major multi-dimensional index of a flat offset. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 0) return idx;
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

export function emptyResult(key: string, shapeA: number[], shapeB: number[], kind: 'float' | 'int', tol: ResolvedTolerance | null,
  o: TensorCompareOptions): KeyResult {
  return {
    key, status: 'PASS', pass: true, kind, shapeA: [...shapeA], shapeB: [...shapeB], dtypeA: o.dtypeA ?? '?', dtypeB: o.dtypeB ?? '?',
    notes: [], tol, count: 0, violations: 0, maxAbs: null, meanAbs: null, maxRel: null, relToMax: null, nmse: null,
    nmseDb: null, cosMean: null, cosMin: null, cosMinRow: null, worstRatio: null, worst: null, top: [],
    nanA: 0, infA: 0, nanB: 0, infB: 0,
  };
}

export const shapeNote = (a: readonly number[], b: readonly number[]) =>
  `shape [${a.join(', ')}] vs [${b.join(', ')}]: ${numel(a)} vs ${numel(b)} elements`;

export const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Compare one tensor pair. `actual`/`expected` are row-major data of `shapeA`/`shapeB`; equal element counts
 * with different shapes are compared as a row-major reshape (noted), other mismatches are FAIL(shape).
 */
export function compareTensors(name: string, actual: Data, expected: Data, shapeA: readonly number[],
  shapeB: readonly number[], tol: Tolerance, opts: TensorCompareOptions = {}): KeyResult {
  const integer = opts.integer ?? isIntegerKeyName(name);
  // A ResolvedTolerance (from toleranceFor) keeps its stage name; a bare {rtol, atol} is labelled "given".
  const resolved: ResolvedTolerance | null = integer ? null : { stage: 'given', overridden: false, ...tol };
  const r = emptyResult(name, [...shapeA], [...shapeB], integer ? 'int' : 'float', resolved, opts);
  if (actual.length !== numel(shapeA) || expected.length !== numel(shapeB)) {
    throw new CompareError(`tensor "${name}": data length does not match its shape`);
  }
  if (!(tol.rtol >= 0 && tol.atol >= 0 && Number.isFinite(tol.rtol) && Number.isFinite(tol.atol))) {
    throw new CompareError(`tensor "${name}": rtol and atol must be finite and >= 0 (got rtol=${tol.rtol}, atol=${tol.atol})`);
  }
  if (actual.length !== expected.length) {
    r.status = 'FAIL(shape)';
    r.pass = false;
    r.notes.push(shapeNote(shapeA, shapeB));
    if (integer) noteFirstIntDifference(r, actual, expected);
    return r;
  }
  if (!sameShape(shapeA, shapeB)) {
    r.notes.push(`reshaped: [${shapeA.join(', ')}] vs [${shapeB.join(', ')}], compared in row-major order`);
    if (shapeA.at(-1) !== shapeB.at(-1)) r.notes.push('last dimensions differ: a transposed layout (NCHW vs NHWC) would fail here');
  }
  if (integer) compareExact(r, actual, expected, shapeB);
  else compareFloat(r, actual, expected, shapeB, tol);
  if (!integer && (opts.logits ?? (name === 'logits' || name === 'llm.lm_head')) && r.nanA + r.infA + r.nanB + r.infB === 0) {
    r.logits = logitsStats(actual, expected, shapeB.at(-1) ?? 1);
  }
  return r;
}

function noteFirstIntDifference(r: KeyResult, a: Data, e: Data): void {
  const n = Math.min(a.length, e.length);
  let i = 0;
  while (i < n && a[i] === e[i]) i++;
  r.notes.push(i < n ? `first difference at flat index ${i}: ${a[i]} vs ${e[i]}` : `the first ${n} elements agree`);
}

function compareExact(r: KeyResult, a: Data, e: Data, shape: readonly number[]): void {
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === e[i]) continue;
    r.violations++;
    const d = Math.abs(a[i] - e[i]);
    if (!(d <= maxAbs)) maxAbs = d;
    if (r.top.length < TOP_K) r.top.push({ index: unravel(i, shape), actual: a[i], expected: e[i], absDiff: d });
  }
  countNonFinite(r, a, e);
  r.count = a.length;
  r.maxAbs = maxAbs;
  if (r.nanA + r.nanB > 0) r.status = 'FAIL(nan)';
  else if (r.violations > 0) r.status = 'FAIL';
  r.pass = r.status === 'PASS';
}

function countNonFinite(r: KeyResult, a: Data, e: Data): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) Number.isNaN(a[i]) ? r.nanA++ : r.infA++;
    if (!Number.isFinite(e[i])) Number.isNaN(e[i]) ? r.nanB++ : r.infB++;
  }
}

function compareFloat(r: KeyResult, a: Data, e: Data, shape: readonly number[], tol: Tolerance): void {
  const { rtol, atol } = tol;
  const floor = rtol > 0 ? atol / rtol : 0;
  const rowLen = shape.length === 0 ? 1 : shape[shape.length - 1];
  // Top-K by |a-e| (non-finite pairs rank as +Infinity), kept sorted, earlier index first on ties.
  const topKey: number[] = [];
  const topIdx: number[] = [];
  let sumAbs = 0, sumSq = 0, sumE2 = 0, maxAbs = 0, maxE = 0, maxRel = 0, worstRatio = 0, worstIdx = -1, finite = 0;
  let dot = 0, na2 = 0, ne2 = 0, cosSum = 0, cosMin = Infinity, cosMinRow = -1, rows = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = e[i];
    let key: number;
    if (Number.isFinite(x) && Number.isFinite(y)) {
      const d = Math.abs(x - y);
      const ay = Math.abs(y);
      finite++;
      sumAbs += d;
      sumSq += d * d;
      sumE2 += y * y;
      if (d > maxAbs) maxAbs = d;
      if (ay > maxE) maxE = ay;
      const bound = atol + rtol * ay;
      const ratio = d === 0 ? 0 : d / bound; // d / 0 = Infinity when both tolerances are 0
      if (ratio > 1) r.violations++;
      if (ratio > worstRatio) { worstRatio = ratio; worstIdx = i; }
      const rel = d === 0 ? 0 : d / (ay + floor);
      if (rel > maxRel) maxRel = rel;
      dot += x * y;
      na2 += x * x;
      ne2 += y * y;
      key = d;
    } else {
      r.violations++;
      key = Infinity;
    }
    if (key > 0 && (topKey.length < TOP_K || key > topKey[topKey.length - 1])) {
      let p = Math.min(topKey.length, TOP_K - 1);
      if (topKey.length < TOP_K) { topKey.push(key); topIdx.push(i); }
      while (p > 0 && key > topKey[p - 1]) { topKey[p] = topKey[p - 1]; topIdx[p] = topIdx[p - 1]; p--; }
      topKey[p] = key;
      topIdx[p] = i;
    }
    if ((i + 1) % rowLen === 0) {
      // Both rows all-zero count as identical; one zero row as orthogonal.
      const cos = dot === na2 && na2 === ne2 ? 1 : na2 === 0 || ne2 === 0 ? 0
        : Math.max(-1, Math.min(1, dot / (Math.sqrt(na2) * Math.sqrt(ne2))));
      cosSum += cos;
      if (cos < cosMin) { cosMin = cos; cosMinRow = rows; }
      rows++;
      dot = na2 = ne2 = 0;
    }
  }
  countNonFinite(r, a, e);
  const diff = (i: number): Diff => ({ index: unravel(i, shape), actual: a[i], expected: e[i], absDiff: Math.abs(a[i] - e[i]) });
  r.count = a.length;
  r.top = topIdx.map(diff);
  r.maxAbs = maxAbs;
  r.meanAbs = finite > 0 ? sumAbs / finite : 0;
  r.maxRel = maxRel;
  r.relToMax = maxAbs === 0 ? 0 : maxAbs / maxE;
  r.nmse = sumSq === 0 ? 0 : sumSq / sumE2;
  r.nmseDb = 10 * Math.log10(r.nmse);
  r.cosMean = rows > 0 ? cosSum / rows : null;
  r.cosMin = rows > 0 ? cosMin : null;
  r.cosMinRow = rows > 0 ? cosMinRow : null;
  r.worstRatio = worstRatio;
  r.worst = worstIdx >= 0 ? diff(worstIdx) : null;
  if (r.nanA + r.nanB > 0) r.status = 'FAIL(nan)';
  else if (r.infA + r.infB > 0) r.status = 'FAIL(inf)';
  else if (r.violations > 0) r.status = 'FAIL';
  r.pass = r.status === 'PASS';
}

/** Indices of the k largest values of row[0..n) (earlier index first on ties). */
function topIndices(x: Data, start: number, n: number, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < n; j++) {
    const v = x[start + j];
    if (idx.length === k && !(v > x[start + idx[k - 1]])) continue;
    if (idx.length < k) idx.push(j);
    let p = idx.length - 1;
    while (p > 0 && v > x[start + idx[p - 1]]) { idx[p] = idx[p - 1]; p--; }
    idx[p] = j;
  }
  return idx;
}

function logSumExp(x: Data, start: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[start + j]);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[start + j] - m);
  return m + Math.log(s);
}

/** Top-1 agreement, top-5 overlap and KL(softmax(e) || softmax(a)) over rows of length `v`. */
export function logitsStats(a: Data, e: Data, v: number): LogitsStats {
  const rows = v > 0 ? a.length / v : 0;
  const k = Math.min(TOP_K, v);
  let agree = 0, overlap = 0, klSum = 0, klMax = 0, klMaxRow = 0;
  for (let r = 0; r < rows; r++) {
    const s = r * v;
    const ta = topIndices(a, s, v, k);
    const te = topIndices(e, s, v, k);
    if (ta[0] === te[0]) agree++;
    overlap += te.filter((j) => ta.includes(j)).length / k;
    const lseA = logSumExp(a, s, v);
    const lseE = logSumExp(e, s, v);
    let kl = 0;
    for (let j = 0; j < v; j++) {
      const logPe = e[s + j] - lseE;
      kl += Math.exp(logPe) * (logPe - (a[s + j] - lseA));
    }
    kl = Math.max(0, kl); // rounding can make an exact match slightly negative
    klSum += kl;
    if (kl > klMax) { klMax = kl; klMaxRow = r; }
  }
  return { rows, top1Agreement: rows ? agree / rows : 1, top5Overlap: rows ? overlap / rows : 1, klMean: rows ? klSum / rows : 0, klMax, klMaxRow };
}
