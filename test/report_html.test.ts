import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compareFiles } from '../src/parity/compare_files.ts';
import { renderHtml } from '../src/parity/report_html.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { chromium as chromiumReq, findChromium, named, unmet } from './helpers/requires.ts';
import { f32, writerIn } from './helpers/tensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'report-html-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const write = writerIn(tmp);

// Expected: four layers; actual: exact up to layer 1, then drifting; an odd key name to check escaping.
const layers = [0, 1, 2, 3].map((i) => `llm.model.layers.${i}`);
const base = [0.5, -1, 2, 8, 3, -4];
const expected = write('expected.safetensors', [
  f32('pixel_values', [1, 6], base), ...layers.map((k) => f32(k, [1, 2, 3], base)), f32('odd<key>&"x"', [2], [1, 2]),
  { name: 'input_ids', dtype: 'I32', shape: [3], data: Int32Array.of(1, 2, 3) },
]);
const actual = write('actual.safetensors', [
  f32('pixel_values', [1, 6], base),
  ...layers.map((k, i) => f32(k, [1, 2, 3], base.map((v, j) => v + (i < 2 ? 0 : 10 ** (i - 5) * (j + 1))))),
  f32('odd<key>&"x"', [2], [1, 2]), { name: 'input_ids', dtype: 'I32', shape: [3], data: Int32Array.of(1, 2, 3) },
]);
const result = compareFiles(actual, expected);
const html = renderHtml(result);

describe('HTML report', () => {
  it('is one self-contained document: no scripts, links, external URLs or fonts', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    for (const bad of [/<script/i, /<link/i, /\bsrc=/i, /url\(/i, /@import/i, /@font-face/i]) expect(html).not.toMatch(bad);
    // The only URL is the SVG namespace, which is an identifier and never fetched.
    expect(html.match(/https?:\/\/[^"\s]+/g)).toEqual(['http://www.w3.org/2000/svg']);
  });

  it('contains the file names, the curve, the tolerance line and one row per key; escapes key names', () => {
    expect(result.firstFailure).toBe('llm.model.layers.2');
    expect(html).toContain(actual);
    expect(html).toContain(expected);
    // Segments break at keys without a value (input_ids), so the path is M..., M...L...
    expect(html).toMatch(/<path class="series-rel" d="M[\d.]+,[\d.]+(?:[ML][\d.]+,[\d.]+)*L[\d.]+,[\d.]+"/);
    expect(html).toMatch(/<path class="series-nmse" d="M/);
    expect(html).toMatch(/<path class="tolerance" d="M/);
    expect(html).toContain('odd&lt;key&gt;&amp;&quot;x&quot;');
    expect(html).not.toContain('odd<key>');
    expect(html.match(/<tr id="[^"]*" class="(pass|fail)/g)).toHaveLength(result.results.length);
    expect(html).toMatch(/<tr id="first-divergence" class="fail first-divergence"><td>\d+<\/td><td class="key"><a id="key-llm.model.layers.2"><\/a>llm\.model\.layers\.2</);
    expect(html).toContain('<a href="#first-divergence">');
  });
});

const chromium = findChromium();
const browser = chromiumReq();

describe.skipIf(unmet(browser))(named('HTML report rendered in headless Chromium', browser), () => {
  it('the rendered DOM has the table rows, the SVG curve and the highlighted first divergence', () => {
    const file = path.join(tmp, 'report.html');
    fs.writeFileSync(file, html);
    const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
    const run = spawnSync(chromium!, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`, '--dump-dom', pathToFileURL(file).href,
    ], { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 });
    expect(run.error).toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    const dom = run.stdout;
    // The browser's serialization, not our string: parsed rows, SVG elements, classes and anchors survive.
    expect(dom.match(/<tr id="[^"]*" class="(pass|fail)[^"]*">/g)).toHaveLength(result.results.length);
    for (const r of result.results) expect(dom).toContain(`>${r.key.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}<`);
    expect(dom).toMatch(/<svg[^>]*>[\s\S]*<path class="series-rel" d="M[^"]+"[\s\S]*<\/svg>/);
    expect(dom).toMatch(/<circle class="pt-fail"/);
    expect(dom).toMatch(/<tr id="first-divergence" class="fail first-divergence">[\s\S]*?llm\.model\.layers\.2/);
    expect(dom).toMatch(/first divergence: llm\.model\.layers\.2/);
  });
});
