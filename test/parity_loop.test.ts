// The whole parity loop on the bundled tiny model: the PyTorch reference dumps
// activations with forward hooks, `minicpmv trace` records the same keys, and
// `minicpmv compare` passes; a deliberately perturbed weight then makes compare
// fail first at the layer that holds it. Also: trace's summary, --hooks and --patch.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { repoRoot } from './helpers/paths.ts';
import { named, pytorchReference, unmet } from './helpers/requires.ts';
import { runMain } from './helpers/cli.ts';

const model = path.join(repoRoot, 'weights', 'tiny');
const image = path.join(repoRoot, 'examples', 'red_ball.png');
const prompt = 'What is in the image?';
const py = path.join(repoRoot, 'reference', '.venv', 'bin', 'python');
const torch = pytorchReference();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-loop-'));

async function run(...argv: string[]): Promise<{ code: number; text: string }> {
  const r = await runMain(argv);
  return { code: r.code, text: [r.out, r.err].filter(Boolean).join('\n') };
}

const trace = (out: string, ...extra: string[]) =>
  run('trace', '--model', model, '--image', image, '--prompt', prompt, '--out', out, '--backend', 'cpu', ...extra);

describe('trace', () => {
  const all = path.join(tmp, 'all.safetensors');
  beforeAll(async () => {
    const r = await trace(all, '--new-tokens', '3');
    expect(r.code, r.text).toBe(0);
  });

  it('records every hook in execution order, with a summary whose statistics match the data', () => {
    const f = SafetensorsFile.open(all);
    const keys = f.keys();
    expect(keys.slice(0, 3)).toEqual(['pixel_values', 'vpm.patch_embed', 'vpm.pos_embed_resampled']);
    for (const k of ['vpm.blocks.0.attn', 'vpm.blocks.1', 'vpm.norm', 'resampler.attn.weights', 'resampler', 'input_ids', 'inputs_embeds',
      'llm.model.layers.1.self_attn', 'llm.model.norm', 'logits', 'greedy.ids']) expect(keys).toContain(k);
    expect(keys.indexOf('vpm.norm')).toBeLessThan(keys.indexOf('resampler'));
    expect(keys.indexOf('llm.model.norm')).toBeLessThan(keys.indexOf('logits'));
    expect(f.info('input_ids').dtype).toBe('I32');
    expect(f.info('pixel_values').shape).toEqual([1, 3, 448, 448]);
    expect(f.readInt32('greedy.ids').length).toBe(3);
    const summary = JSON.parse(fs.readFileSync(all.replace(/\.safetensors$/, '.summary.json'), 'utf8'));
    const x = f.readFloat32('llm.model.norm');
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const absMax = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(summary['llm.model.norm'].shape).toEqual(f.info('llm.model.norm').shape);
    expect(summary['llm.model.norm'].mean).toBeCloseTo(mean, 5);
    expect(summary['llm.model.norm'].absMax).toBeCloseTo(absMax, 5);
    expect(summary['llm.model.norm'].nan).toBe(0);
    f.close();
  });

  it('--hooks: * is one segment, ** any number', async () => {
    const out = path.join(tmp, 'layers.safetensors');
    expect((await trace(out, '--hooks', 'llm.model.layers.*,vpm.**')).code).toBe(0);
    const keys = SafetensorsFile.open(out).keys();
    expect(keys.filter((k) => k.startsWith('llm.'))).toEqual(['llm.model.layers.0', 'llm.model.layers.1']);
    expect(keys).toContain('vpm.blocks.0.mlp');
    expect(keys).not.toContain('resampler');
  });

  it('--patch replaces one hook and the rest runs on from it', async () => {
    const ref = SafetensorsFile.open(all);
    const shape = ref.info('llm.model.layers.0').shape;
    const own = path.join(tmp, 'own.safetensors'), zero = path.join(tmp, 'zero.safetensors');
    writeSafetensors(own, [{ name: 'llm.model.layers.0', dtype: 'F32', shape, data: ref.readFloat32('llm.model.layers.0') }]);
    writeSafetensors(zero, [{ name: 'x', dtype: 'F32', shape, data: new Float32Array(ref.readFloat32('llm.model.layers.0').length) }]);
    const a = path.join(tmp, 'patched_own.safetensors'), b = path.join(tmp, 'patched_zero.safetensors');
    expect((await trace(a, '--hooks', 'llm.model.layers.*,logits', '--patch', `llm.model.layers.0=${own}`)).code).toBe(0);
    expect((await trace(b, '--hooks', 'llm.model.layers.*,logits', '--patch', `llm.model.layers.0=${zero}`)).code).toBe(0);
    const A = SafetensorsFile.open(a), B = SafetensorsFile.open(b);
    // Patched with its own value: downstream identical. With zeros: layer 0 is zero, layer 1 moves.
    expect(Array.from(A.readFloat32('llm.model.layers.1'))).toEqual(Array.from(ref.readFloat32('llm.model.layers.1')));
    expect(B.readFloat32('llm.model.layers.0').every((v) => v === 0)).toBe(true);
    const d = B.readFloat32('llm.model.layers.1').reduce((m, v, i) => Math.max(m, Math.abs(v - ref.readFloat32('llm.model.layers.1')[i])), 0);
    expect(d).toBeGreaterThan(0.01);
    const bad = await trace(path.join(tmp, 'bad.safetensors'), '--patch', `llm.model.layer.0=${own}`);
    expect(bad.code).toBe(2);
    expect(bad.text).toMatch(/unknown hook "llm.model.layer.0"; valid hooks: .*llm\.model\.layers\.\{i\}/);
    const wrongShape = await trace(path.join(tmp, 'bad2.safetensors'), '--patch', `vpm.norm=${own}`);
    expect(wrongShape.code).toBe(2);
    expect(wrongShape.text).toMatch(/patch for "vpm.norm" has shape/);
  });
});

describe.skipIf(unmet(torch))(named('PyTorch dump -> trace -> compare', torch), () => {
  const torchOut = path.join(tmp, 'torch.safetensors');
  const tsOut = path.join(tmp, 'ts.safetensors');
  beforeAll(() => {
    const r = spawnSync(py, [path.join(repoRoot, 'reference', 'dump_activations.py'), '--model', model, '--image', image,
      '--prompt', prompt, '--out', torchOut, '--new-tokens', '4'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  }, 300_000);

  it('compare passes on the unmodified model', async () => {
    expect((await trace(tsOut, '--new-tokens', '4')).code).toBe(0);
    const r = await run('compare', tsOut, torchOut);
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(/logits/);
    // The resampler's attention probabilities per head (MHA output 1, average_attn_weights=False) are compared too.
    const json = JSON.parse((await run('compare', tsOut, torchOut, '--json', '--keys', 'resampler.attn.weights')).text);
    expect(json.results.map((k: { key: string; shapeA: number[]; pass: boolean }) => [k.key, k.shapeA, k.pass]))
      .toEqual([['resampler.attn.weights', [1, 1, 64, 1024], true]]);
  });

  it('a perturbed weight in layer 1 makes compare fail first at that layer', async () => {
    const dir = path.join(tmp, 'perturbed');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(model)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(model, f), path.join(dir, f));
    const src = SafetensorsFile.open(path.join(model, 'model.safetensors'));
    const target = 'llm.model.layers.1.mlp.down_proj.weight';
    const tensors: TensorToWrite[] = src.keys().map((k) => {
      const data = src.readFloat32(k);
      if (k === target) for (let i = 0; i < data.length; i += 7) data[i] += 0.05;
      return { name: k, dtype: 'F32', shape: src.info(k).shape, data };
    });
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    const out = path.join(tmp, 'perturbed.safetensors');
    expect((await run('trace', '--model', dir, '--image', image, '--prompt', prompt, '--out', out, '--backend', 'cpu')).code).toBe(0);
    const r = await run('compare', out, torchOut, '--json');
    expect(r.code).toBe(1);
    const json = JSON.parse(r.text.slice(r.text.indexOf('{')));
    expect(json.firstFailure).toBe('llm.model.layers.1.mlp');
    const byKey = Object.fromEntries(json.results.map((k: { key: string; pass: boolean }) => [k.key, k.pass]));
    expect(byKey['llm.model.layers.0']).toBe(true);
    expect(byKey['llm.model.layers.1.self_attn']).toBe(true);
    expect(byKey['llm.model.layers.1']).toBe(false);
  });
});
