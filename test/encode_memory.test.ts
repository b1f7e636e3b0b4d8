// An image encode's transient memory stays one block's worth, whatever the depth: each SigLIP block frees
// its attention's intermediates before its MLP and the previous block's output once its own exists, so the
// tensor bytes alive when block i finishes are the same for every i (before, every block's output lived
// until the end of the encode: +1 block output per block).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tfjs.ts';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { Hooks } from '../src/model/hooks.ts';
import { loadModel } from '../src/model/load.ts';
import { writeRandomCheckpoint } from '../src/weights/random.ts';
import { repoRoot } from './helpers/paths.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'encode-memory-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const backends = nativeAvailable().ok ? ['tensorflow', 'cpu'] : ['cpu'];

describe.each(backends)('image encode memory on %s', (backend) => {
  it('the bytes alive at the end of each of 6 vision blocks do not grow with the block index', async () => {
    await initBackend(backend);
    const dir = path.join(tmp, backend);
    const cfg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'weights', 'tiny', 'config.json'), 'utf8'));
    cfg.vision_depth = 7; // 6 blocks run (the last is dropped)
    cfg.image_size = 224;
    const cfgFile = path.join(tmp, `${backend}-config.json`);
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    writeRandomCheckpoint(cfgFile, dir, { dtype: 'bf16', seed: 3 });
    const model = loadModel(dir);
    const S = model.cfg.vision.imageSize;
    const px = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i * 0.01));
    const alive = new Map<number, number>();
    const hooks = new Hooks({
      select: (k) => /^vpm\.blocks\.\d+$/.test(k),
      onActivation: (k) => alive.set(Number(k.split('.')[2]), tf.memory().numBytes),
    });
    model.encodeImage(px).dispose(); // the first encode caches the position table for this size
    const before = tf.memory().numTensors;
    const out = model.encodeImage(px, hooks);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect([...alive.keys()]).toEqual([0, 1, 2, 3, 4, 5]);
    const blockOut = S / 14 * (S / 14) * cfg.vision_embed_dim * 4;
    // Block 0 also has the patch embedding and its sum with the positions alive; from block 1 on, the same.
    for (let i = 2; i < 6; i++) expect(alive.get(i), `block ${i} vs block 1`).toBe(alive.get(1));
    expect(alive.get(1)! - alive.get(0)!).toBeLessThan(blockOut);
    model.dispose();
  });
});
