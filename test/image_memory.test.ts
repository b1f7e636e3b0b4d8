// Issue 13: images under the size limit must not exhaust memory. Each case runs in a fresh process
// (test/helpers/image_peak.ts) that reads one synthetic file, decodes and preprocesses it, and reports
// its own peak RSS before and after; the growth must stay within 3x the decoded RGB bytes (+48 MiB
// for the JIT and heap), and a small file claiming a huge size must be refused before any big allocation.
// Measured when written (growth / RGB): baseline JPEG 6000x6000 4:2:0 1.1x, progressive JPEG
// 4000x4000 4:4:4 3.3x minus the slack (its coefficient buffer is 2 bytes per sample, as in
// libjpeg-turbo), PNG 6000x6000 RGB 2.1x, PNG 1x20,000,000 gray 1.8x; the 13000x13000 claims +0.5 MB.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/paths.ts';

const helper = path.join(repoRoot, 'test', 'helpers', 'image_peak.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-peak-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Peak { fileBytes: number; before: number; after: number; width?: number; height?: number; error?: string }
function run(name: string): Peak {
  const file = path.join(tmp, `${name}.bin`);
  const node = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', helper, ...args], { encoding: 'utf8', cwd: repoRoot });
  const made = node('make', name, file);
  expect(made.status, made.stderr).toBe(0);
  const r = node('measure', file);
  expect(r.status, r.stderr).toBe(0);
  fs.rmSync(file);
  return JSON.parse(r.stdout) as Peak;
}
const MiB = 2 ** 20;

describe('decode + preprocess memory (child processes)', () => {
  it.each(['jpeg-13000-claim-baseline', 'jpeg-13000-claim-progressive'])('%s: refused before the big allocation', (name) => {
    const p = run(name);
    expect(p.fileBytes).toBeLessThan(1300);
    expect(p.error).toMatch(/^image: image file is truncated: /);
    expect(p.after - p.before).toBeLessThan(32 * MiB); // the output alone would be 507 MB
  });
  it.each([
    ['jpeg-baseline-420', 6000, 6000],
    ['jpeg-progressive-444', 4000, 4000],
    ['png-rgb-6000', 6000, 6000],
    ['png-gray-1x20M', 20_000_000, 1],
  ])('%s: within 3x the RGB bytes', (name, w, h) => {
    const p = run(name);
    expect([p.width, p.height, p.error]).toEqual([w, h, undefined]);
    const rgb = w * h * 3;
    const growth = p.after - p.before;
    console.log(`${name}: peak RSS growth ${(growth / MiB).toFixed(0)} MiB = ${(growth / rgb).toFixed(2)} x RGB (${(rgb / MiB).toFixed(0)} MiB)`);
    expect(growth).toBeLessThanOrEqual(3 * rgb + 48 * MiB);
  });
});
