// The fuzz targets' short run (docs/fuzzing.md; `npm run fuzz -- --runs 10000` is the long campaign):
// for each target, the regression corpus and a few hundred generated inputs in a worker process with a
// heap cap, each input watched for CPU time and the process for resident memory. The property: every input
// returns a value or throws the project's UserError; no crash, no hang, no blow-up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { corpusFiles, formatReport, fuzzTarget } from './fuzz/campaign.ts';

/** Generated inputs per target in `npm test`: about a minute for the five on an idle machine. */
const SHORT_RUNS: Record<string, number> = { safetensors: 1000, png: 1000, jpeg: 500, tokenizer: 300, config: 1000 };

describe('fuzz targets: short run of generated inputs plus the regression corpus', () => {
  for (const [target, runs] of Object.entries(SHORT_RUNS)) {
    it(`${target}: values or UserErrors only, in bounded time and memory`, async () => {
      const corpus = corpusFiles(target);
      expect(corpus.length, `test/fuzz/corpus/${target} holds the found inputs`).toBeGreaterThan(0);
      const r = await fuzzTarget(target, { runs, seed: 1 }, corpus);
      expect(r.findings, formatReport(r)).toEqual([]);
      expect(r.inputs).toBe(runs + corpus.length);
      expect(r.ok + r.userErrors).toBe(r.inputs);
      // Both outcomes occur: the mutations reach past the first check, and the checks refuse some inputs.
      expect(r.ok, formatReport(r)).toBeGreaterThan(0);
      expect(r.userErrors, formatReport(r)).toBeGreaterThan(0);
    });
  }
});

describe('the campaign driver catches what it is there to catch', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-selftest-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a crash, a hang and a blow-up are each reported with their input; ok and user errors are not', async () => {
    const files = [0, 1, 2, 3, 4, 0].map((b, i) => {
      const f = path.join(dir, `input-${i}`);
      fs.writeFileSync(f, Uint8Array.of(b));
      return f;
    });
    const r = await fuzzTarget('selftest', { runs: 0, hangMs: 2000, maxRssMiB: 400, outDir: path.join(dir, 'found') }, files);
    expect([r.inputs, r.ok, r.userErrors, r.crashes, r.hangs, r.blowups]).toEqual([6, 2, 1, 1, 1, 1]);
    expect(r.findings.map((f) => [f.kind, f.input])).toEqual([
      ['crash', 'corpus input-2'], ['hang', 'corpus input-3'], ['blowup', 'corpus input-4']]);
    expect(r.findings[0].detail).toMatch(/^TypeError: a bug @ /);
    for (const f of r.findings) expect(fs.readFileSync(f.file!)).toEqual(fs.readFileSync(files[f.index]));
    expect(r.workers).toBe(3); // restarted after the hang and after the blow-up
  });
});
