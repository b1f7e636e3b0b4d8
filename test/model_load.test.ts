// Loading: whole model or the vision tower alone, from a checkpoint directory;
// encodeImageFile from an image file; clear errors for mismatched checkpoints.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig } from '../src/config_file.ts';
import { encodeImageFile, loadModel } from '../src/model/load.ts';
import { MiniCPMV, type TensorSource } from '../src/model/minicpmv.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { expectClose } from './helpers/expect_close.ts';
import { goldenDir } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const G = path.join(goldenDir, 'tiny-a');

const golden = shared('golden', 'tiny-a', 'model.safetensors');
describe.skipIf(unmet(golden))(named('loading tiny-a', golden), () => {
  let vision: MiniCPMV;
  beforeAll(async () => {
    await initBackend();
    vision = loadModel(G, { parts: 'vision' });
  });
  afterAll(() => vision?.dispose());

  it('the vision tower loads alone and holds no llm weight', () => {
    expect(vision.hasLlm).toBe(false);
    expect(vision.params.keys().some((k) => k.startsWith('llm.'))).toBe(false);
    expect(() => vision.llm).toThrow(/vision tower only/);
  });

  it('encodeImageFile(model, file) gives the golden resampler output as [64, hidden]', () => {
    const c = SafetensorsFile.open(path.join(G, 'cases', 'a1_grad500x300.safetensors'));
    tf.dispose(encodeImageFile(vision, path.join(G, 'images', 'grad_500x300.png'))); // creates the cached position tables
    const before = tf.memory().numTensors;
    const v = encodeImageFile(vision, path.join(G, 'images', 'grad_500x300.png'));
    expect(v.shape).toEqual([64, 256]);
    expectClose('resampler', v.dataSync() as Float32Array, c.readFloat32('resampler'), v.shape, c.info('resampler').shape);
    v.dispose();
    expect(tf.memory().numTensors).toBe(before);
    c.close();
  });

  it('a checkpoint that does not match the config is refused, naming keys and both shapes', () => {
    const cfg = loadConfig(path.join(G, 'config.json'));
    const f = SafetensorsFile.open(path.join(G, 'model.safetensors'));
    const broken: TensorSource = {
      dir: 'broken-source',
      keys: () => f.keys().filter((k) => k !== 'vpm.norm.bias'),
      has: (k) => k !== 'vpm.norm.bias' && f.has(k),
      info: (k) => (k === 'resampler.query' ? { shape: [32, 256], dtype: 'F32' } : f.info(k)),
      readFloat32: (k) => f.readFloat32(k),
    };
    expect(() => MiniCPMV.fromSource(cfg, broken, { parts: 'vision' })).toThrow(new RegExp(
      '^broken-source: checkpoint does not match the config \\(2 problem\\(s\\)\\): missing vpm\\.norm\\.bias: expected shape \\[96\\]; '
      + 'wrong shape resampler\\.query: expected \\[64, 256\\], checkpoint has \\[32, 256\\]$'));
    f.close();
  });
});
