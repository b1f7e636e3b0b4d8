import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CompareError, compareTensors, logitsStats, unravel } from '../src/parity/compare.ts';
import { compareFiles } from '../src/parity/compare_files.ts';
import { formatNumber } from '../src/parity/format.ts';
import { GlobError, compileGlobs, matchKey, modelOrder } from '../src/parity/globs.ts';
import { DEFAULT_TOLERANCE, STAGE_TOLERANCES, toleranceFor } from '../src/parity/tolerances.ts';
import { SafetensorsError, SafetensorsFile } from '../src/weights/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { goldenDir, repoRoot } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';
import { f32, i32 } from './helpers/tensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'compare-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
function file(tensors: TensorToWrite[]): string {
  const p = path.join(tmp, `t${counter++}.safetensors`);
  writeSafetensors(p, tensors);
  return p;
}

const goldenCase = path.join(goldenDir, 'tiny-a', 'cases', 'a1_grad500x300.safetensors');
const golden = shared('golden', 'tiny-a', 'cases', 'a1_grad500x300.safetensors');

describe('key globs', () => {
  it('* is one dotted segment, ** any number of segments', () => {
    expect(matchKey('llm.model.layers.*', 'llm.model.layers.3')).toBe(true);
    expect(matchKey('llm.model.layers.*', 'llm.model.layers.3.mlp')).toBe(false);
    expect(matchKey('llm.model.layers.*', 'llm.model.layers')).toBe(false);
    expect(matchKey('vpm.**', 'vpm.blocks.3.attn')).toBe(true);
    expect(matchKey('vpm.**', 'vpm')).toBe(true); // zero segments
    expect(matchKey('vpm.**', 'resampler')).toBe(false);
    expect(matchKey('**.mlp', 'llm.model.layers.0.mlp')).toBe(true);
    expect(matchKey('**.mlp', 'llm.model.layers.0.mlp.down_proj')).toBe(false);
    expect(matchKey('llm.**.mlp', 'llm.model.layers.12.mlp')).toBe(true);
    expect(matchKey('vpm.pos_embed*', 'vpm.pos_embed_resampled')).toBe(true);
    expect(matchKey('vpm.pos_embed*', 'vpm.patch_embed')).toBe(false);
    expect(matchKey('logits', 'logits.positions')).toBe(false);
    expect(matchKey('a.b', 'aXb')).toBe(false); // dots are literal
  });

  it('compileGlobs splits commas, applies ! exclusions, and selects all when empty', () => {
    const sel = compileGlobs('vpm.blocks.*, llm.**,!**.mlp');
    expect(['vpm.blocks.0', 'vpm.blocks.0.attn', 'llm.model.layers.1', 'llm.model.layers.1.mlp', 'logits'].filter(sel))
      .toEqual(['vpm.blocks.0', 'llm.model.layers.1']);
    expect(compileGlobs([])('anything')).toBe(true);
    expect(compileGlobs(['!logits'])('logits')).toBe(false);
    expect(compileGlobs(['!logits'])('resampler')).toBe(true);
  });

  it('rejects malformed globs with the glob in the message', () => {
    expect(() => compileGlobs('vpm..blocks')).toThrow(GlobError);
    expect(() => compileGlobs('vpm..blocks')).toThrow(/vpm\.\.blocks/);
    expect(() => matchKey('vpm.bl**', 'vpm.blocks')).toThrow(/whole segment/);
  });
});

describe('model order', () => {
  it('sorts the golden keys in execution order, sub-modules before their block, numbers numerically', () => {
    const expected = [
      'pixel_values', 'vpm.patch_embed.proj', 'vpm.patch_embed', 'vpm.pos_embed_resampled',
      'vpm.blocks.0.norm1', 'vpm.blocks.0.attn.qkv', 'vpm.blocks.0.attn.proj', 'vpm.blocks.0.attn', 'vpm.blocks.0.mlp', 'vpm.blocks.0',
      'vpm.blocks.2', 'vpm.blocks.10', 'vpm.norm',
      'resampler.kv_proj', 'resampler.ln_q', 'resampler.attn', 'resampler.ln_post', 'resampler.proj', 'resampler',
      'input_ids', 'image_bound', 'llm.model.embed_tokens', 'inputs_embeds',
      'llm.model.layers.0.input_layernorm', 'llm.model.layers.0.self_attn', 'llm.model.layers.0.mlp', 'llm.model.layers.0',
      'llm.model.layers.1.self_attn', 'llm.model.layers.1', 'llm.model.layers.9', 'llm.model.layers.10', 'llm.model.norm',
      'llm.lm_head', 'logits.positions', 'logits', 'greedy.ids', 'greedy.topk_logits', 'beam.ids', 'aaa.unknown', 'zz.2', 'zz.10',
    ];
    // Deterministic shuffle (reverse, then interleave halves) so the sort has real work to do.
    const r = [...expected].reverse();
    const shuffled = r.filter((_, i) => i % 2 === 0).concat(r.filter((_, i) => i % 2 === 1));
    expect(modelOrder(shuffled)).toEqual(expected);
  });
});

describe('tolerances', () => {
  it('every stage default is written once and found by key', () => {
    expect(toleranceFor('pixel_values')).toMatchObject({ stage: 'preprocessing', rtol: 0, atol: 1e-6 });
    expect(toleranceFor('vpm.patch_embed').stage).toBe('patch embedding');
    expect(toleranceFor('vpm.blocks.3').stage).toBe('vision tower');
    expect(toleranceFor('resampler').stage).toBe('resampler');
    expect(toleranceFor('logits').stage).toBe('logits');
    expect(toleranceFor('llm.model.layers.0.mlp').stage).toBe('language model');
    expect(toleranceFor('something.else').stage).toBe('other');
    expect(toleranceFor('vpm.norm', { rtol: 0.5 })).toMatchObject({ rtol: 0.5, atol: 1e-4, overridden: true });
    expect(new Set(STAGE_TOLERANCES.map((s) => s.stage)).size).toBe(STAGE_TOLERANCES.length);
  });

  it('docs/tolerances.md states the same table as the code', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'tolerances.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Per-stage defaults'), doc.indexOf('Why these numbers'));
    const rows = section.split('\n').filter((l) => /^\| [a-z]/.test(l) && !l.startsWith('| stage'))
      .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    const fromCode = [...STAGE_TOLERANCES, DEFAULT_TOLERANCE].map((s) => [s.stage, s.rtol, s.atol]);
    expect(rows.map(([stage, , rtol, atol]) => [stage, Number(rtol), Number(atol)])).toEqual(fromCode);
    for (const [i, s] of STAGE_TOLERANCES.entries()) {
      expect(rows[i][1].replace(/`/g, '').split(/,\s*/).join(',')).toBe(s.keys);
    }
  });
});

describe('compareTensors: metrics against hand-computed values', () => {
  // e = [[1, 2], [3, 4]], a - e = [[0.25, 0], [-0.5, 0]]: every value exact in float32.
  const e = Float32Array.from([1, 2, 3, 4]);
  const a = Float32Array.from([1.25, 2, 2.5, 4]);
  const tol = { rtol: 0.1, atol: 0.01 };
  const r = compareTensors('x', a, e, [2, 2], [2, 2], tol);

  it('absolute, relative, NMSE', () => {
    expect(r.kind).toBe('float');
    expect(r.maxAbs).toBe(0.5);
    expect(r.meanAbs).toBe(0.75 / 4);
    // max rel = max |a-e| / (|e| + atol/rtol), floor atol/rtol = 0.1
    expect(r.maxRel).toBeCloseTo(Math.max(0.25 / 1.1, 0.5 / 3.1), 15);
    expect(r.relToMax).toBe(0.5 / 4);
    const nmse = (0.25 ** 2 + 0.5 ** 2) / (1 + 4 + 9 + 16);
    expect(r.nmse).toBeCloseTo(nmse, 15);
    expect(r.nmseDb).toBeCloseTo(10 * Math.log10(nmse), 12);
  });

  it('cosine per row (last dimension)', () => {
    const cos0 = (1.25 * 1 + 2 * 2) / (Math.hypot(1.25, 2) * Math.hypot(1, 2));
    const cos1 = (2.5 * 3 + 4 * 4) / (Math.hypot(2.5, 4) * Math.hypot(3, 4));
    expect(r.cosMean).toBeCloseTo((cos0 + cos1) / 2, 14);
    expect(r.cosMin).toBeCloseTo(Math.min(cos0, cos1), 14);
    expect(r.cosMinRow).toBe(cos0 < cos1 ? 0 : 1);
  });

  it('tolerance violations, worst element, largest differences with indices', () => {
    // bounds 0.01 + 0.1*|e|: 0.11 at [0,0] (diff 0.25) and 0.31 at [1,0] (diff 0.5) are both exceeded.
    expect(r.violations).toBe(2);
    expect(r.status).toBe('FAIL');
    expect(r.pass).toBe(false);
    expect(r.worstRatio).toBeCloseTo(0.25 / 0.11, 12);
    expect(r.worst).toEqual({ index: [0, 0], actual: 1.25, expected: 1, absDiff: 0.25 });
    expect(r.top).toEqual([
      { index: [1, 0], actual: 2.5, expected: 3, absDiff: 0.5 },
      { index: [0, 0], actual: 1.25, expected: 1, absDiff: 0.25 },
    ]);
    expect(r.count).toBe(4);
    expect([r.nanA, r.infA, r.nanB, r.infB]).toEqual([0, 0, 0, 0]);
  });

  it('the boundary |a-e| = atol + rtol*|e| passes, and there max rel = rtol exactly', () => {
    const t = { rtol: 0.125, atol: 0.25 }; // bound at e=2: 0.25 + 0.25 = 0.5
    const ok = compareTensors('x', Float32Array.of(2.5), Float32Array.of(2), [1], [1], t);
    expect(ok.status).toBe('PASS');
    expect(ok.maxRel).toBe(0.125);
    expect(ok.worstRatio).toBe(1);
    const bad = compareTensors('x', Float32Array.of(2.5000002), Float32Array.of(2), [1], [1], t);
    expect(bad.status).toBe('FAIL');
    expect(bad.maxRel!).toBeGreaterThan(0.125);
  });

  it('rtol = atol = 0 requires bit-equal values', () => {
    const t = { rtol: 0, atol: 0 };
    expect(compareTensors('x', Float32Array.of(1, -3), Float32Array.of(1, -3), [2], [2], t).status).toBe('PASS');
    const r2 = compareTensors('x', Float32Array.of(1, Math.fround(1 + 2 ** -23)), Float32Array.of(1, 1), [2], [2], t);
    expect(r2.status).toBe('FAIL');
    expect(r2.maxAbs).toBe(2 ** -23);
  });

  it('cosine of orthogonal, opposite and zero rows', () => {
    const t = { rtol: 0, atol: 0 };
    const orth = compareTensors('x', Float32Array.of(1, 0, 0, 2), Float32Array.of(0, 3, 5, 0), [2, 2], [2, 2], t);
    expect([orth.cosMean, orth.cosMin]).toEqual([0, 0]);
    const opp = compareTensors('x', Float32Array.of(1, -2, 3), Float32Array.of(-1, 2, -3), [3], [3], t);
    expect(opp.cosMin).toBe(-1);
    const zeros = compareTensors('x', Float32Array.of(0, 0, 0, 0), Float32Array.of(0, 0, 1, 1), [2, 2], [2, 2], t);
    expect(zeros.cosMean).toBe(0.5); // both-zero row counts as identical (1), zero vs nonzero as orthogonal (0)
    expect(zeros.cosMinRow).toBe(1);
  });

  it('top-5: the five largest differences in order, multi-dimensional indices, earlier index first on ties', () => {
    const shape = [2, 3, 4];
    const e = new Float32Array(24).map((_, i) => i);
    const a = Float32Array.from(e);
    const bumps: [number, number][] = [[23, 0.5], [0, 4], [7, 2], [13, -3], [17, 1], [5, 2], [11, 0.25]];
    for (const [i, d] of bumps) a[i] += d;
    const r = compareTensors('x', a, e, shape, shape, { rtol: 0, atol: 0 });
    expect(r.top.map((d) => d.index)).toEqual([[0, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 3], [1, 1, 1]]);
    expect(r.top.map((d) => d.absDiff)).toEqual([4, 3, 2, 2, 1]);
    expect(r.top[1]).toEqual({ index: [1, 0, 1], actual: 10, expected: 13, absDiff: 3 });
    expect(unravel(23, shape)).toEqual([1, 2, 3]);
    expect(r.violations).toBe(7);
  });

  it('NaN never passes: counted per side, listed first among the differences', () => {
    const e = Float32Array.of(1, 2, 3, 4);
    const nanA = compareTensors('x', Float32Array.of(1, NaN, 3, 4.5), e, [4], [4], { rtol: 1, atol: 1 });
    expect(nanA.status).toBe('FAIL(nan)');
    expect([nanA.nanA, nanA.nanB]).toEqual([1, 0]);
    expect(nanA.top[0].index).toEqual([1]);
    expect(Number.isNaN(nanA.top[0].actual)).toBe(true);
    expect(nanA.maxAbs).toBe(0.5); // statistics cover the finite pairs
    const both = compareTensors('x', Float32Array.of(NaN, 1), Float32Array.of(NaN, 1), [2], [2], { rtol: 1, atol: 1 });
    expect(both.status).toBe('FAIL(nan)');
    expect([both.nanA, both.nanB]).toEqual([1, 1]);
    const inf = compareTensors('x', Float32Array.of(Infinity, 1), Float32Array.of(Infinity, 1), [2], [2], { rtol: 1, atol: 1 });
    expect(inf.status).toBe('FAIL(inf)');
    expect([inf.infA, inf.infB]).toEqual([1, 1]);
  });

  it('identical tensors: zero error, NMSE -inf dB, cosine 1', () => {
    const x = Float32Array.of(0.1, -7, 3e-8, 12);
    const r = compareTensors('x', x, Float32Array.from(x), [2, 2], [2, 2], { rtol: 0, atol: 0 });
    expect([r.status, r.maxAbs, r.meanAbs, r.maxRel, r.nmse, r.nmseDb, r.cosMin]).toEqual(['PASS', 0, 0, 0, 0, -Infinity, 1]);
    expect(r.top).toEqual([]);
  });
});

describe('compareTensors: shapes and integers', () => {
  it('accepts a row-major reshape of equal element count and notes it', () => {
    const x = new Float32Array(8).map((_, i) => i);
    const r = compareTensors('vpm.patch_embed', x, Float32Array.from(x), [1, 4, 2], [1, 2, 2, 2], { rtol: 0, atol: 0 });
    expect(r.status).toBe('PASS');
    expect(r.notes.join(' ')).toMatch(/reshaped: \[1, 4, 2\] vs \[1, 2, 2, 2\]/);
    const t = compareTensors('x', x, Float32Array.from(x), [2, 4], [4, 2], { rtol: 0, atol: 0 });
    expect(t.notes.join(' ')).toMatch(/last dimensions differ/);
  });

  it('other shape mismatches are FAIL(shape) for that key', () => {
    const r = compareTensors('x', new Float32Array(6), new Float32Array(8), [2, 3], [2, 4], { rtol: 1, atol: 1 });
    expect(r.status).toBe('FAIL(shape)');
    expect(r.notes[0]).toMatch(/\[2, 3\] vs \[2, 4\]: 6 vs 8 elements/);
    expect(r.maxAbs).toBeNull();
  });

  it('integer keys must match exactly and list their first differences in index order', () => {
    const e = Int32Array.of(1, 3041, 2194, 3088, 101, 0, 0);
    const a = Int32Array.of(1, 3041, 2195, 3088, 101, 7, 0);
    const r = compareTensors('input_ids', a, e, [1, 7], [1, 7], { rtol: 1, atol: 100 });
    expect(r.kind).toBe('int');
    expect(r.tol).toBeNull();
    expect(r.status).toBe('FAIL');
    expect(r.violations).toBe(2);
    expect(r.top).toEqual([
      { index: [0, 2], actual: 2195, expected: 2194, absDiff: 1 },
      { index: [0, 5], actual: 7, expected: 0, absDiff: 7 },
    ]);
    expect(compareTensors('greedy.ids', Int32Array.of(5, 6), Int32Array.of(5, 6), [2], [2], { rtol: 0, atol: 0 }).status).toBe('PASS');
    const short = compareTensors('beam.ids', Int32Array.of(5, 6, 9), Int32Array.of(5, 6, 7, 2), [3], [4], { rtol: 0, atol: 0 });
    expect(short.status).toBe('FAIL(shape)');
    expect(short.notes.join(' ')).toMatch(/first difference at flat index 2: 9 vs 7/);
  });
});

describe('logits statistics', () => {
  it('top-1 agreement, top-5 overlap, KL(e || a) by hand', () => {
    // Row 0: same order (top-1 agrees, overlap 5/5); row 1: a's top-5 is {7,6,5,4,0} vs e's {0,1,2,3,4}.
    const e = Float32Array.of(8, 7, 6, 5, 4, 3, 2, 1, /**/ 8, 7, 6, 5, 4, 3, 2, 1);
    const a = Float32Array.of(8, 7, 6, 5, 4, 3, 2, 1, /**/ 4, 0, 0, 0, 5, 6, 7, 8);
    const g = logitsStats(a, e, 8);
    expect(g.rows).toBe(2);
    expect(g.top1Agreement).toBe(0.5);
    expect(g.top5Overlap).toBe((1 + 2 / 5) / 2);
    expect(g.klMaxRow).toBe(1);
  });

  it('KL of two-way softmaxes: p = (1/2, 1/2) against q = (3/4, 1/4)', () => {
    const g = logitsStats(Float32Array.of(Math.log(3), 0), Float32Array.of(0, 0), 2);
    const kl = 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25);
    expect(g.klMean).toBeCloseTo(kl, 7);
    expect(g.klMax).toBeCloseTo(kl, 7);
    // A constant shift leaves the softmax unchanged.
    expect(logitsStats(Float32Array.of(3, 4, 5), Float32Array.of(1, 2, 3), 3).klMax).toBeCloseTo(0, 12);
  });

  it('compareTensors adds them for the logits key', () => {
    const e = Float32Array.of(1, 2, 3, 3, 2, 1);
    const r = compareTensors('logits', Float32Array.of(1, 2, 3, 1, 2, 3), e, [1, 2, 3], [1, 2, 3], { rtol: 0, atol: 0 });
    expect(r.logits).toMatchObject({ rows: 2, top1Agreement: 0.5, top5Overlap: 1 });
  });
});

describe('compareFiles', () => {
  const fileA = file([
    f32('logits', [1, 2, 3], [1, 2, 3, 3, 2, 1]),
    i32('input_ids', [1, 3], [1, 5, 9]),
    f32('vpm.patch_embed', [1, 4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
    f32('vpm.blocks.0', [1, 2, 2], [1, 2, 3, 4.5]),
    f32('vpm.blocks.1', [1, 2, 2], [1, NaN, 3, 4]),
    f32('resampler', [1, 3], [0, 0, 0]),
    f32('only.in.a', [1], [0]),
  ]);
  const fileB = file([
    f32('vpm.blocks.1', [1, 2, 2], [1, 2, 3, 4]),
    f32('vpm.blocks.0', [1, 2, 2], [1, 2, 3, 4]),
    { name: 'vpm.patch_embed', dtype: 'BF16', shape: [1, 2, 2, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
    i32('input_ids', [1, 3], [1, 5, 9]),
    f32('resampler', [1, 4], [0, 0, 0, 0]),
    f32('logits', [1, 2, 3], [1, 2, 3, 3, 2, 1]),
    f32('llm.model.norm', [1], [0]),
  ]);

  it('compares common keys in model order and lists keys found in one file only', () => {
    const r = compareFiles(fileA, fileB);
    expect(r.results.map((k) => [k.key, k.status])).toEqual([
      ['vpm.patch_embed', 'PASS'], ['vpm.blocks.0', 'FAIL'], ['vpm.blocks.1', 'FAIL(nan)'], ['resampler', 'FAIL(shape)'],
      ['input_ids', 'PASS'], ['logits', 'PASS'],
    ]);
    expect(r.results[0].notes[0]).toMatch(/reshaped/);
    expect(r.results[0].dtypeB).toBe('BF16');
    expect(r.results[1].tol).toMatchObject({ stage: 'vision tower', rtol: 1e-4, atol: 1e-4 });
    expect(r.onlyInA).toEqual(['only.in.a']);
    expect(r.onlyInB).toEqual(['llm.model.norm']);
    expect(r.firstFailure).toBe('vpm.blocks.0');
    expect([r.compared, r.passed, r.failed, r.ok]).toEqual([6, 3, 3, false]);
    expect(r.results.at(-1)!.logits).toMatchObject({ top1Agreement: 1, klMax: 0 });
  });

  it('--rtol/--atol override every stage; --keys selects; strict fails on one-sided keys', () => {
    const loose = compareFiles(fileA, fileB, { atol: 0.5, keys: 'vpm.blocks.0,input_ids,only.**' });
    expect(loose.results.map((k) => k.key)).toEqual(['vpm.blocks.0', 'input_ids']);
    expect(loose.results[0]).toMatchObject({ status: 'PASS', tol: { rtol: 1e-4, atol: 0.5, overridden: true } });
    expect(loose.onlyInA).toEqual(['only.in.a']);
    expect(loose.ok).toBe(true);
    expect(compareFiles(fileA, fileB, { atol: 0.5, keys: 'vpm.blocks.0,input_ids,only.**', strict: true }).ok).toBe(false);
    expect(() => compareFiles(fileA, fileB, { keys: 'nothing.*' })).toThrow(/select none of the 7 keys of A and 7 keys of B/);
    expect(() => compareFiles(fileA, fileB, { rtol: -1 })).toThrow(CompareError);
  });

  it('bad input: missing file, not safetensors, a directory', () => {
    expect(() => compareFiles(path.join(tmp, 'missing.safetensors'), fileB)).toThrow(CompareError);
    expect(() => compareFiles(path.join(tmp, 'missing.safetensors'), fileB)).toThrow(/missing\.safetensors: no such file/);
    const junk = path.join(tmp, 'junk.safetensors');
    fs.writeFileSync(junk, 'this is not a safetensors file at all');
    expect(() => compareFiles(fileA, junk)).toThrow(SafetensorsError);
    expect(() => compareFiles(fileA, junk)).toThrow(/junk\.safetensors/);
    expect(() => compareFiles(tmp, fileB)).toThrow(/not a regular file/);
  });

  it('formats numbers compactly', () => {
    expect([formatNumber(0), formatNumber(0.5), formatNumber(1.23456e-7), formatNumber(-Infinity), formatNumber(NaN), formatNumber(null)])
      .toEqual(['0', '0.5', '1.23e-7', '-inf', 'nan', '-']);
  });
});

describe.skipIf(unmet(golden))(named('golden tiny-a case', golden), () => {
  it('compared with itself: every key passes with zero error', () => {
    const r = compareFiles(goldenCase, goldenCase);
    const f = SafetensorsFile.open(goldenCase);
    const n = f.keys().length;
    f.close();
    expect(r.compared).toBe(n);
    expect(r.ok).toBe(true);
    expect(r.firstFailure).toBeNull();
    for (const k of r.results) {
      expect(k.status).toBe('PASS');
      expect(k.maxAbs).toBe(0);
      if (k.kind === 'float') expect([k.nmse, k.cosMin, k.violations]).toEqual([0, 1, 0]);
    }
    const logits = r.results.find((k) => k.key === 'logits')!;
    expect(logits.logits).toMatchObject({ rows: 80, top1Agreement: 1, top5Overlap: 1, klMax: 0 });
  });

  it('a copy perturbed from llm.model.layers.1 on fails first at llm.model.layers.1', () => {
    const src = SafetensorsFile.open(goldenCase);
    const order = modelOrder(src.keys());
    const from = order.indexOf('llm.model.layers.1');
    expect(from).toBeGreaterThan(0);
    const tensors: TensorToWrite[] = order.map((k, i) => {
      const { dtype, shape } = src.info(k);
      if (dtype !== 'F32') return { name: k, dtype: 'I32', shape, data: src.readInt32(k) };
      const data = src.readFloat32(k);
      if (i >= from) for (let j = 0; j < data.length; j++) data[j] += 1e-2 * Math.sin(j); // |delta| <= 1e-2
      return { name: k, dtype: 'F32', shape, data };
    });
    src.close();
    const perturbed = file(tensors);
    const r = compareFiles(perturbed, goldenCase);
    expect(r.firstFailure).toBe('llm.model.layers.1');
    const idx = r.results.findIndex((k) => k.key === 'llm.model.layers.1');
    expect(r.results.slice(0, idx).every((k) => k.pass)).toBe(true);
    const first = r.results[idx];
    expect(first.maxAbs!).toBeLessThanOrEqual(1e-2 * 1.0001);
    expect(first.maxAbs!).toBeGreaterThan(0.99e-2);
    expect(r.results.find((k) => k.key === 'llm.model.norm')!.pass).toBe(false);
    expect(r.ok).toBe(false);
  });
});
