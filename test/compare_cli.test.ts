import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMain } from './helpers/cli.ts';
import { goldenDir } from './helpers/paths.ts';
import { f32, i32, writerIn } from './helpers/tensors.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'compare-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const write = writerIn(tmp);
const run = (...argv: string[]) => runMain(['compare', ...argv]);

const expected = write('expected.safetensors', [
  i32('input_ids', [1, 4], [1, 5, 9, 2]),
  f32('vpm.blocks.0', [1, 2, 2], [1, 2, 3, 4]),
  f32('llm.model.layers.0', [1, 2, 2], [0.5, -1, 2, 8]),
  f32('logits', [1, 1, 4], [1, 2, 3, 4]),
]);
const same = write('same.safetensors', [
  f32('logits', [1, 1, 4], [1, 2, 3, 4]),
  f32('llm.model.layers.0', [1, 2, 2], [0.5, -1, 2, 8]),
  f32('vpm.blocks.0', [1, 4], [1, 2, 3, 4]), // row-major reshape: accepted
  i32('input_ids', [1, 4], [1, 5, 9, 2]),
  f32('extra.key', [1], [3]),
]);
const worse = write('worse.safetensors', [
  i32('input_ids', [1, 4], [1, 5, 9, 2]),
  f32('vpm.blocks.0', [1, 2, 2], [1, 2, 3, 4]),
  f32('llm.model.layers.0', [1, 2, 2], [0.5, -1, 2.25, 8]),
  f32('logits', [1, 1, 4], [1, 2, NaN, 4]),
]);

describe('minicpmv compare: exit codes and output', () => {
  it('0 when every common key passes; prints the table in model order and the summary', async () => {
    const r = await run(same, expected);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    const keyLines = ['input_ids', 'vpm.blocks.0', 'llm.model.layers.0', 'logits'].map((k) => lines.findIndex((l) => l.startsWith(`${k} `)));
    // Model order: vision, then input ids, then the LLM, then logits (file order differs).
    const [ids, vpm, llm, logits] = keyLines;
    expect(vpm).toBeGreaterThan(0);
    expect([vpm < ids, ids < llm, llm < logits]).toEqual([true, true, true]);
    expect(lines[vpm]).toMatch(/\[1,4\] vs \[1,2,2\]\s+0\s+0\s+-inf\s+1\s+PASS$/);
    expect(r.out).toMatch(/only in A \(1\): extra\.key/);
    expect(r.out).toMatch(/4 keys compared: 4 PASS, 0 FAIL; only in A: 1, only in B: 0 -> OK/);
  });

  it('--strict turns a key present in one file only into exit 1', async () => {
    expect((await run(same, expected, '--strict')).code).toBe(1);
  });

  it('1 when a key fails; names the first failing key with its largest differences', async () => {
    const r = await run(worse, expected);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^llm\.model\.layers\.0 .*\s0\.25\s.*FAIL$/m);
    expect(r.out).toMatch(/^logits .*FAIL\(nan\)$/m);
    expect(r.out).toMatch(/first failing key \(model order\): llm\.model\.layers\.0/);
    expect(r.out).toMatch(/\[0, 1, 0\]: 2\.25 vs 2 {2}\(0\.25\)/);
    expect(r.out).toMatch(/1 of 4 elements outside/);
  });

  it('--rtol/--atol override the stage defaults; --keys selects keys', async () => {
    expect((await run(worse, expected, '--atol', '0.3', '--keys', 'llm.**')).code).toBe(0);
    expect((await run(worse, expected, '--rtol=0.2', '--keys', 'llm.**,input_ids')).code).toBe(0);
    expect((await run(worse, expected, '--keys', '**,!logits')).code).toBe(1);
  });

  it('--json prints the whole structured result, non-finite numbers spelled out', async () => {
    const r = await run(worse, expected, '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.firstFailure).toBe('llm.model.layers.0');
    expect(j.results.map((k: { key: string }) => k.key)).toEqual(['vpm.blocks.0', 'input_ids', 'llm.model.layers.0', 'logits']);
    const logits = j.results.find((k: { key: string }) => k.key === 'logits');
    expect(logits).toMatchObject({ status: 'FAIL(nan)', nanA: 1, nanB: 0 });
    expect(logits.top[0]).toMatchObject({ index: [0, 0, 2], actual: 'nan', expected: 3 });
    expect(j.results[0].nmseDb).toBe('-inf');
  });

  it('--html writes a report file', async () => {
    const html = path.join(tmp, 'report.html');
    const r = await run(worse, expected, '--html', html);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/wrote .*report\.html/);
    expect(fs.readFileSync(html, 'utf8')).toMatch(/id="first-divergence"/);
  });

  it('2 for bad input, with one line naming the file and no stack trace', async () => {
    const missing = path.join(tmp, 'nope.safetensors');
    const junk = path.join(tmp, 'junk.safetensors');
    fs.writeFileSync(junk, 'PNG? no: not a safetensors file');
    for (const [args, pattern] of [
      [[missing, expected], /nope\.safetensors: no such file/],
      [[expected, junk], /junk\.safetensors/],
      [[expected], /expected two files/],
      [[expected, same, same], /too many arguments/],
      [[same, expected, '--rtol', 'abc'], /--rtol expects a number/],
      [[same, expected, '--keys', 'vpm..x'], /empty segment/],
      [[same, expected, '--keys', 'nothing.here'], /select none/],
      [[same, expected, '--atol=-1'], /atol must be a finite number >= 0/],
      [[same, expected, '--bogus'], /unknown flag --bogus/],
    ] as const) {
      const r = await run(...args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err.split('\n')).toHaveLength(1);
      expect(r.err).not.toMatch(/at .*\.ts:\d+/);
      expect(r.out).toBe('');
    }
  });

  it('--help lists the flags', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    for (const f of ['--rtol', '--atol', '--keys', '--json', '--html', '--strict']) expect(r.out).toContain(f);
  });
});

const goldenCase = path.join(goldenDir, 'tiny-a', 'cases', 'a1_grad500x300.safetensors');
const golden = shared('golden', 'tiny-a', 'cases', 'a1_grad500x300.safetensors');
describe.skipIf(unmet(golden))(named('minicpmv compare on the golden case', golden), () => {
  it('the golden file against itself exits 0 with every key PASS', async () => {
    const r = await run(goldenCase, goldenCase);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/25 keys compared: 25 PASS, 0 FAIL/);
    expect(r.out).not.toMatch(/FAIL\s*$/m);
  });
});
