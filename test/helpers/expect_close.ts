// Numeric assertions through the project's one tolerance policy
// (src/parity/tolerances.ts): |a-e| <= atol + rtol*|e|, per stage.
// A failure names the key, the max error, where it is, and the worst pairs.
import { expect } from 'vitest';
import { compareTensors } from '../../src/parity/compare.ts';
import { toleranceFor, type Tolerance } from '../../src/parity/tolerances.ts';

export function expectClose(
  key: string, actual: Float32Array | Int32Array, expected: Float32Array | Int32Array,
  shapeA: readonly number[], shapeB: readonly number[], tol: Tolerance = toleranceFor(key),
): void {
  const r = compareTensors(key, actual, expected, shapeA, shapeB, tol);
  const where = r.worst ? ` at [${r.worst.index}] (${r.worst.actual} vs ${r.worst.expected})` : '';
  const pairs = r.top.slice(0, 3).map((d) => `[${d.index}] ${d.actual} vs ${d.expected}`).join('; ');
  expect(r.pass, `${key}: ${r.status}, max abs ${r.maxAbs}, max rel ${r.maxRel} (rtol ${tol.rtol}, atol ${tol.atol})` +
    `${where}; ${r.violations} of ${r.count} outside; worst pairs: ${pairs}; ${r.notes.join('; ')}`).toBe(true);
}
