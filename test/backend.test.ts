import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError, describeBackend, initBackend, nativeAvailable } from '../src/backend/index.ts';
import { named, requirement, unmet } from './helpers/requires.ts';

// Seeded data so a failure reproduces.
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

function maxRelErr(a: Float32Array, e: Float32Array): { err: number; at: number } {
  // |a-e| <= atol + rtol*|e| with atol = rtol * max|e| (relative to the tensor's scale)
  let scale = 0;
  for (const v of e) scale = Math.max(scale, Math.abs(v));
  let err = 0, at = -1;
  for (let i = 0; i < e.length; i++) {
    const r = Math.abs(a[i] - e[i]) / (scale + Math.abs(e[i]));
    if (r > err) { err = r; at = i; }
  }
  return { err, at };
}

const native = nativeAvailable();
const nativeReq = requirement(native.ok, `the native tensorflow backend does not load (${native.reason})`);
const noNative = requirement(!native.ok, 'the native backend loads here; this checks the fallback without it');
// CI (CI=true) must run on the native backend: a silent fall back to cpu fails the suite there.
const expectNative = requirement(process.env.CI === 'true' || process.env.MINICPMV_EXPECT_NATIVE === '1',
  'checked only under CI=true or MINICPMV_EXPECT_NATIVE=1');

describe('backend selection', () => {
  it('cpu always loads', async () => {
    const r = await initBackend('cpu');
    expect(r.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(describeBackend(r)).toContain('backend: cpu');
  });

  it('an unknown name is refused with the list of backends', async () => {
    await expect(initBackend('metal')).rejects.toThrow(BackendError);
    await expect(initBackend('metal')).rejects.toThrow(/unknown backend "metal".*available: tensorflow, cpu/);
  });

  it('MINICPMV_BACKEND is read when no name is given', async () => {
    const old = process.env.MINICPMV_BACKEND;
    process.env.MINICPMV_BACKEND = 'cpu';
    try {
      expect((await initBackend()).name).toBe('cpu');
      process.env.MINICPMV_BACKEND = 'bogus';
      await expect(initBackend()).rejects.toThrow(/from MINICPMV_BACKEND/);
    } finally {
      if (old === undefined) delete process.env.MINICPMV_BACKEND;
      else process.env.MINICPMV_BACKEND = old;
    }
  });

  it.skipIf(unmet(expectNative))(named('the native backend is installed where CI expects it', expectNative), () => {
    expect(native.ok, native.reason).toBe(true);
  });

  it.skipIf(unmet(nativeReq))(named('auto picks the native tensorflow backend and really runs kernels there', nativeReq), async () => {
    const r = await initBackend();
    expect(r.name).toBe('tensorflow');
    expect(tf.getBackend()).toBe('tensorflow');
    // The native backend object is tfjs-node's NodeJSKernelBackend, which wraps the binding.
    const backend = tf.backend() as unknown as { binding?: { TF_Version?: string } };
    expect(backend.binding).toBeDefined();
    expect(typeof backend.binding!.TF_Version).toBe('string');
    const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 4]));
    expect(Array.from(y.dataSync())).toEqual(new Array(8).fill(3));
    tf.dispose(y);
  });

  it.skipIf(unmet(noNative))(named('without the native backend, auto falls back to cpu and says why', noNative), async () => {
    const r = await initBackend();
    expect(r.name).toBe('cpu');
    expect(describeBackend(r)).toMatch(/native tensorflow backend not used: .+/);
    await expect(initBackend('tensorflow')).rejects.toThrow(/requested but cannot load/);
  });
});

describe.skipIf(unmet(nativeReq))(named('tensorflow and cpu agree (rtol 1e-5)', nativeReq), () => {
  type Case = { name: string; run: () => tf.Tensor };
  const A = rand(64 * 96, 1), B = rand(96 * 80, 2), X = rand(4 * 28 * 28 * 3, 3), K = rand(14 * 14 * 3 * 8, 4);
  const cases: Case[] = [
    { name: 'matMul', run: () => tf.matMul(tf.tensor2d(A, [64, 96]), tf.tensor2d(B, [96, 80])) },
    { name: 'matMul transposeB', run: () => tf.matMul(tf.tensor2d(A, [64, 96]), tf.tensor2d(B, [80, 96]), false, true) },
    { name: 'softmax', run: () => tf.softmax(tf.tensor2d(A, [64, 96]).mul(3)) },
    { name: 'erf', run: () => tf.erf(tf.tensor1d(A)) },
    {
      name: 'conv2d 14x14 stride 14',
      run: () => tf.conv2d(tf.tensor4d(X, [4, 28, 28, 3]), tf.tensor4d(K, [14, 14, 3, 8]), 14, 'valid'),
    },
    {
      name: 'gather',
      run: () => tf.gather(tf.tensor2d(B, [96, 80]), tf.tensor1d([0, 95, 7, 7, 42], 'int32')),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      await initBackend('cpu');
      const e = tf.tidy(c.run);
      const expected = e.dataSync() as Float32Array;
      e.dispose();
      await initBackend('tensorflow');
      const a = tf.tidy(c.run);
      const actual = a.dataSync() as Float32Array;
      a.dispose();
      expect(actual.length).toBe(expected.length);
      const { err, at } = maxRelErr(actual, expected);
      expect(err, `${c.name}: max rel err ${err} at ${at} (${actual[at]} vs ${expected[at]})`).toBeLessThanOrEqual(1e-5);
    });
  }
});
