// Numbers and shapes as the CLI table (`minicpmv compare`) and the HTML report write them.
import { sameShape, type KeyResult } from './compare.ts';
import type { CompareResult } from './compare_files.ts';

/** 3 significant digits; exact zero as "0"; non-finite as nan / inf / -inf; null as "-". */
export function formatNumber(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined) return '-';
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const ax = Math.abs(x);
  return ax >= 1e-2 && ax < 1e4 ? String(Number(x.toPrecision(digits))) : x.toExponential(digits - 1);
}

export function formatShape(r: Pick<KeyResult, 'shapeA' | 'shapeB'>): string {
  const s = (d: number[]) => `[${d.join(',')}]`;
  return sameShape(r.shapeA, r.shapeB) ? s(r.shapeA) : `${s(r.shapeA)} vs ${s(r.shapeB)}`;
}

/** JSON with non-finite numbers spelled "nan" / "inf" / "-inf" (JSON.stringify would turn them into null). */
export function resultToJson(result: CompareResult): string {
  return JSON.stringify(result, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? formatNumber(v) : v), 2);
}
