// The fused decoder layer (MiniCPMDecoderLayer) and the native SwiGLU: a decode step with no hook on a layer
// runs that layer as one native call, and must give the layer-by-layer native path's bits (same kernels, same
// order) for a prefill, greedy steps and beams that reorder; SwiGLU agrees with its TF.js reference; bad
// inputs are one line; nothing is left behind.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadNativeOps } from '../src/backend/native_ops.ts';
import { swigluOps } from '../src/layers/mlp.ts';
import { Hooks } from '../src/model/hooks.ts';
import { loadModel } from '../src/model/load.ts';
import type { WeightsDtypeOption } from '../src/model/minicpmv.ts';
import { mulberry32 } from '../src/model/rng.ts';
import { DECODER_LAYER, NativeOpError, SWIGLU, runNative, swigluNative } from '../src/ops/native_kernels.ts';
import { expectClose } from './helpers/expect_close.ts';
import { repoRoot } from './helpers/paths.ts';
import { named, requirement, unmet } from './helpers/requires.ts';

const W = path.join(repoRoot, 'weights', 'tiny');
const native = nativeAvailable();
const ops = native.ok ? loadNativeOps() : undefined;
const opsReq = requirement(ops?.ok === true, native.ok
  ? `the project's native ops do not load (${ops?.detail}; npm install builds them where tfjs-node's libtensorflow exists)`
  : `the native tensorflow backend does not load (${native.reason})`);
const rand = (n: number, seed: number, scale = 1) => { const r = mulberry32(seed); return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale); };

/**
 * A prefill of 7 positions, 3 greedy-like steps of one sequence, then 3 beams for 3 steps with reorders: the
 * logits of every call, copied out, and the kernels the last step ran. `layerHooks` puts a hook on every
 * decoder layer (which makes the forward take the layer-by-layer path).
 */
async function run(weightsDtype: WeightsDtypeOption, layerHooks: boolean) {
  const model = loadModel(W, { weightsDtype });
  const llm = model.llm;
  const hooks = layerHooks ? new Hooks({ select: (k) => k.startsWith('llm.model.layers.'), onActivation: () => {} }) : Hooks.none();
  const logits: Float32Array[] = [];
  const step = (cache: ReturnType<typeof llm.newCache>, ids: number[]) => {
    const x = tf.tidy(() => llm.embed(ids).reshape([ids.length === 7 ? 1 : ids.length, ids.length === 7 ? 7 : 1, -1]) as tf.Tensor3D);
    const y = llm.forward(x, { cache, logits: 'last', hooks });
    logits.push(y.dataSync().slice() as Float32Array);
    tf.dispose([x, y]);
  };
  const before = tf.memory().numTensors;
  const cache = llm.newCache({ slots: 3 });
  step(cache, [1, 5, 9, 13, 17, 21, 25]);
  for (const id of [30, 31, 32]) step(cache, [id]);
  cache.expand(3);
  step(cache, [40, 41, 42]);
  cache.select([1, 1, 0]);
  step(cache, [43, 44, 45]);
  cache.select([2, 0, 1]);
  const profile = await tf.profile(() => step(cache, [46, 47, 48]));
  cache.dispose();
  const leaked = tf.memory().numTensors - before;
  const layers = model.cfg.llm.numLayers;
  model.dispose();
  return { logits, kernels: profile.kernels.map((k) => k.name), leaked, layers };
}

describe.skipIf(unmet(opsReq))(named('MiniCPMDecoderLayer: one call per decoder layer', opsReq), () => {
  for (const dtype of ['auto', 'f32'] as const) {
    it(`gives the layer-by-layer path's bits for a prefill, steps and reordered beams (weights ${dtype})`, async () => {
      await initBackend('tensorflow');
      const fused = await run(dtype, false), layered = await run(dtype, true);
      expect(fused.kernels.filter((k) => k === DECODER_LAYER).length).toBe(fused.layers); // one call per layer
      expect(layered.kernels).not.toContain(DECODER_LAYER);
      expect(fused.logits.length).toBe(layered.logits.length);
      fused.logits.forEach((l, i) => {
        expect(l.every(Number.isFinite), `call ${i}`).toBe(true);
        expect(Buffer.from(l.buffer).equals(Buffer.from(layered.logits[i].buffer)), `call ${i}: fused and layered logits differ`).toBe(true);
      });
      expect(fused.leaked).toBe(0);
      expect(layered.leaked).toBe(0);
    });
  }
});

describe.skipIf(unmet(opsReq))(named('MiniCPMSwiGLU', opsReq), () => {
  it('agrees with silu(g) * u in TF.js ops, including large |g| and the tail past a multiple of 8', async () => {
    await initBackend('tensorflow');
    const n = 3 * 1005; // rows of 1005: a tail past the last multiple of 8
    const gv = rand(n, 3, 12);
    gv[0] = 95; gv[1] = -95; gv[2] = 0; gv[3] = -0.5;
    const g = tf.tensor2d(gv, [3, n / 3]), u = tf.tensor2d(rand(n, 4, 3), [3, n / 3]);
    const a = swigluNative(g, u)!, e = swigluOps(g, u);
    expectClose('swiglu', a.dataSync() as Float32Array, e.dataSync() as Float32Array, a.shape, e.shape, { rtol: 1e-6, atol: 1e-30 });
    tf.dispose([g, u, a, e]);
  });

  it('refuses bad inputs with one line', async () => {
    await initBackend('tensorflow');
    const x = tf.zeros([2, 4]), y = tf.zeros([2, 3]), w = tf.zeros([4, 4]), wi = tf.zeros([4, 2], 'int32'), v = tf.zeros([4]);
    const kc = tf.zeros([2, 1, 8, 4]), idx = tf.tensor2d([[0], [1]], [2, 1], 'int32'), cs = tf.zeros([1, 4]);
    const layer = (over: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) => runNative(DECODER_LAYER,
      { h: x, ln1: v, wq: w, wk: w, wv: w, wo: w, ln2: v, wg: w, wu: w, wd: w, cos: cs, sin: cs, kcache: kc, vcache: kc, idx, ...over },
      { T: 'float32', wtype: 'f32', eps: 1e-5, heads: 1, scale: 0.5, residual: 1, ...attrs });
    const cases: [() => unknown, RegExp][] = [
      [() => runNative(SWIGLU, { g: x, u: y }), /^MiniCPMSwiGLU: g and u must have the same shape$/],
      [() => layer({ h: tf.zeros([4]) }), /^MiniCPMDecoderLayer: expects h \[M, D\]$/],
      [() => layer({ ln2: tf.zeros([3]) }), /^MiniCPMDecoderLayer: the norm weights must be \[D\]$/],
      [() => layer({ wd: tf.zeros([4, 3]) }), /^MiniCPMDecoderLayer: expects wq/],
      [() => layer({}, { wtype: 'bf16' }), /^MiniCPMDecoderLayer: weights must be float32/],
      [() => layer({ wq: wi, wk: wi, wv: wi, wo: wi, wg: wi, wu: wi, wd: wi }, { T: 'int32', wtype: 'f8' }), /^MiniCPMDecoderLayer: wtype must be/],
      [() => layer({}, { heads: 0 }), /^MiniCPMDecoderLayer: heads must be >= 1/],
      [() => layer({}, { residual: NaN }), /^MiniCPMDecoderLayer: heads must be >= 1, .*residual finite$/],
      [() => layer({ idx: tf.tensor2d([[0], [0]], [2, 1], 'int32') }), /^MiniCPMDecoderLayer: two sequences write the same cache slot$/],
      [() => layer({ idx: tf.tensor2d([[0], [5]], [2, 1], 'int32') }), /^MiniCPMDecoderLayer: idx holds a slot outside the cache$/],
      [() => layer({ cos: tf.zeros([2, 4]) }), /^MiniCPMDecoderLayer: cos and sin must be \[T, d\]/],
    ];
    const before = tf.memory().numTensors;
    const ok = tf.tidy(() => layer({}).dataSync()); // the inputs the cases spoil make a valid layer
    expect(ok.length).toBe(8);
    for (const [fn, re] of cases) {
      let err: unknown;
      try { tf.tidy(() => { fn(); }); } catch (e) { err = e; }
      expect(err, String(re)).toBeInstanceOf(NativeOpError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(re);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y, w, wi, v, kc, idx, cs]);
  });
});
