// Parity with the ORIGINAL PyTorch code: ../shared/golden/tiny-a (see its
// README) holds every stage's activations for three image+prompt cases, plus
// greedy and beam-search ids. Runs on the native and the pure-JS backend.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadConfig } from '../src/config_file.ts';
import { beamSearch, greedy } from '../src/model/generate.ts';
import { Hooks } from '../src/model/hooks.ts';
import { MiniCPMV } from '../src/model/minicpmv.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { expectClose } from './helpers/expect_close.ts';
import { goldenDir } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const G = path.join(goldenDir, 'tiny-a');
const CASES = ['a1_grad500x300', 'a2_rings200x150', 'a3_rocket_jpeg'];
const GENERATION_KEYS = new Set(['greedy.ids', 'greedy.topk_ids', 'greedy.topk_logits', 'beam.ids', 'logits.positions', 'image_bound']);
const backends = nativeAvailable().ok ? ['tensorflow', 'cpu'] : ['cpu'];

const golden = shared('golden', 'tiny-a', 'model.safetensors');
describe.skipIf(unmet(golden)).each(backends)(named('golden tiny-a on %s', golden), (backend) => {
  let model: MiniCPMV;
  beforeAll(async () => {
    await initBackend(backend);
    const src = SafetensorsFile.open(path.join(G, 'model.safetensors'));
    model = MiniCPMV.fromSource(loadConfig(path.join(G, 'config.json')), src);
    src.close();
  });
  afterAll(() => model?.dispose());

  const openCase = (name: string) => {
    const f = SafetensorsFile.open(path.join(G, 'cases', `${name}.safetensors`));
    const ids = Array.from(f.readInt32('input_ids'));
    const [start, end] = Array.from(f.readInt32('image_bound'));
    return { f, ids, bounds: [{ start, end }], pixels: f.readFloat32('pixel_values') };
  };

  it.each(CASES)('%s: every stage within the stage tolerance', (name) => {
    const c = openCase(name);
    const got = new Map<string, { data: Float32Array | Int32Array; shape: number[] }>();
    const hooks = new Hooks({
      select: () => true,
      onActivation: (k, t) => got.set(k, { data: t.dataSync() as Float32Array | Int32Array, shape: t.shape }),
    });
    tf.dispose(model.run({ pixelValues: c.pixels, inputIds: c.ids, imageBounds: c.bounds, hooks }));
    const checked: string[] = [];
    for (const key of c.f.keys()) {
      if (GENERATION_KEYS.has(key)) continue;
      const mine = got.get(key);
      expect(mine, `hook ${key} was not recorded`).toBeDefined();
      const info = c.f.info(key);
      const expected = info.dtype === 'I32' ? c.f.readInt32(key) : c.f.readFloat32(key);
      expectClose(key, mine!.data, expected, mine!.shape, info.shape);
      checked.push(key);
    }
    // Every stage of the README is present and was compared.
    for (const k of ['pixel_values', 'vpm.patch_embed', 'vpm.blocks.0', 'vpm.blocks.1', 'vpm.norm', 'resampler',
      'inputs_embeds', 'llm.model.layers.0', 'llm.model.layers.1', 'llm.model.norm', 'logits']) expect(checked).toContain(k);
    c.f.close();
  });

  it('image-independent tables: key position embedding and ln_q', () => {
    const d = SafetensorsFile.open(path.join(G, 'derived.safetensors'));
    const pos = model.resampler.keyPosFor(1024);
    expectClose('resampler.pos_embed_resampled', pos.dataSync() as Float32Array, d.readFloat32('resampler.pos_embed_resampled'),
      pos.shape, d.info('resampler.pos_embed_resampled').shape, { rtol: 1e-5, atol: 1e-6 });
    d.close();
  });

  it.each(CASES)('%s: greedy and beam-search ids are exact', (name) => {
    const c = openCase(name);
    const before = tf.memory().numTensors;
    const embeds = tf.tidy(() => model.buildInputsEmbeds(c.ids, c.bounds, [model.encodeImage(c.pixels)]));
    const g = greedy(model.llm, embeds, { maxNewTokens: 8, eosId: 2 });
    const b = beamSearch(model.llm, embeds, { maxNewTokens: 8, eosId: 2, numBeams: 3, repetitionPenalty: 1.2 });
    embeds.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(g).toEqual(Array.from(c.f.readInt32('greedy.ids')));
    expect(b).toEqual(Array.from(c.f.readInt32('beam.ids')));
    c.f.close();
  });

  it('the KV cache gives the same logits as a full pass', () => {
    const c = openCase(CASES[0]);
    const embeds = tf.tidy(() => model.buildInputsEmbeds(c.ids, c.bounds, [model.encodeImage(c.pixels)]));
    const L = c.ids.length;
    const full = model.llm.forward(embeds, { logits: 'all' });
    const cache = model.llm.newCache();
    const head = embeds.slice([0, 0, 0], [1, L - 3, -1]) as tf.Tensor3D;
    tf.dispose(model.llm.forward(head, { cache, logits: 'last' }));
    for (let t = L - 3; t < L; t++) {
      const x = embeds.slice([0, t, 0], [1, 1, -1]) as tf.Tensor3D;
      const step = model.llm.forward(x, { cache, logits: 'last' });
      const ref = full.slice([0, t, 0], [1, 1, -1]);
      expectClose(`logits[${t}] with cache`, step.dataSync() as Float32Array, ref.dataSync() as Float32Array,
        step.shape, ref.shape, { rtol: 1e-5, atol: 1e-5 });
      tf.dispose([x, step, ref]);
    }
    expect(cache.length).toBe(L);
    tf.dispose([embeds, full, head]);
    cache.dispose();
    c.f.close();
  });

  it('encoding an image and a full forward leave no tensor behind', () => {
    const c = openCase(CASES[1]);
    model.resampler.keyPosFor(1024); // the position caches are created on first use and owned by the model
    model.vpm.posEmbedFor(32, 32);
    const before = tf.memory().numTensors;
    tf.dispose(model.encodeImage(c.pixels));
    tf.dispose(model.run({ pixelValues: c.pixels, inputIds: c.ids, imageBounds: c.bounds }));
    expect(tf.memory().numTensors).toBe(before);
    c.f.close();
  });
});
