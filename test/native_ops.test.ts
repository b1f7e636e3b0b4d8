// The project's own TensorFlow ops (native/minicpmv_ops.cc): built at install, registered into
// tfjs-node's TensorFlow, each equal to its TF.js-op reference within the tolerance policy.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadNativeOps } from '../src/backend/native_ops.ts';
import { BIAS_GELU, LINEAR_ROWS, NORM, NativeOpError, ROTARY, SOFTMAX, linearRowsNative, runNative } from '../src/ops/native_kernels.ts';
import { linear, linearOps } from '../src/layers/linear.ts';
import { mulberry32 } from '../src/model/rng.ts';
import { expectClose } from './helpers/expect_close.ts';

const native = nativeAvailable();
const ops = native.ok ? loadNativeOps() : undefined;
const rand = (n: number, seed: number) => { const r = mulberry32(seed); return Float32Array.from({ length: n }, () => r() * 2 - 1); };

describe.runIf(native.ok)('MiniCPMLinearRows', () => {
  it.runIf(process.env.CI === 'true')('is built and registered where CI runs', () => {
    expect(ops?.ok, ops?.detail).toBe(true);
  });

  it.runIf(ops?.ok === true)('is what linear() runs for up to 8 rows, and it equals MatMul (rtol 1e-5, atol 1e-4)', async () => {
    await initBackend('tensorflow');
    expect(describeBackend(await initBackend('tensorflow'))).toMatch(/native ops: avx2\+fma|native ops: scalar/);
    for (const [R, K, N] of [[1, 2304, 37], [1, 13, 9], [3, 2304, 257], [8, 100, 64], [2, 7, 5]]) {
      const x = tf.tensor2d(rand(R * K, R + K), [R, K]), w = tf.tensor2d(rand(N * K, N), [N, K]);
      const mine = linearRowsNative(x, w)!;
      const ref = linearOps(x, w);
      const viaLinear = linear(x, w);
      // Only the summation order differs: K terms of size ~1 leave absolute differences of a few 1e-5.
      expectClose(`R=${R} K=${K} N=${N}`, mine.dataSync() as Float32Array, ref.dataSync() as Float32Array, mine.shape, ref.shape,
        { rtol: 1e-5, atol: 1e-4 });
      expect(Array.from(viaLinear.dataSync())).toEqual(Array.from(mine.dataSync()));
      tf.dispose([x, w, mine, ref, viaLinear]);
    }
  });

  it.runIf(ops?.ok === true)('refuses inputs of the wrong shape with a clear error', async () => {
    await initBackend('tensorflow');
    const x = tf.zeros([2, 5]), w = tf.zeros([3, 4]);
    expect(() => runNative(LINEAR_ROWS, { x, w })).toThrow(/^MiniCPMLinearRows: expects x \[R<=8, K\] and w \[N, K\]$/);
    tf.dispose([x, w]);
  });
});

describe.runIf(native.ok)('every native op refuses bad input with one line (NativeOpError)', () => {
  it.runIf(ops?.ok === true)('wrong ranks, sizes, dtypes and attributes', async () => {
    await initBackend('tensorflow');
    const x = tf.zeros([2, 4]), w = tf.zeros([4]), s = tf.scalar(1), xi = tf.zeros([2, 4], 'int32');
    const x4 = tf.zeros([1, 2, 3, 4]), cs = tf.zeros([3, 4]);
    const cases: [() => unknown, RegExp][] = [
      [() => runNative(NORM, { x, w, b: s }, { kind: 'layer', eps: 1e-6 }), /^MiniCPMNorm: expects x \[R, D\], w \[D\], b \[D\]$/],
      [() => runNative(NORM, { x, w, b: w }, { kind: 'batch', eps: 1e-6 }), /^MiniCPMNorm: kind must be 'layer' or 'rms'$/],
      [() => runNative(NORM, { x, w, b: w }, { kind: 'rms', eps: NaN }), /^MiniCPMNorm: eps must be a finite number >= 0$/],
      [() => runNative(NORM, { x: xi, w, b: w }, { kind: 'rms', eps: 1e-6 }), /^MiniCPMNorm: .*float/],
      [() => runNative(SOFTMAX, { x: s }), /^MiniCPMSoftmax: expects a non-empty last dimension$/],
      [() => runNative(BIAS_GELU, { x, b: s }), /^MiniCPMBiasGelu: expects x \[R, D\] and b \[D\]$/],
      [() => runNative(ROTARY, { x: x4, cos: cs, sin: x }), /^MiniCPMRotary: expects/],
      [() => runNative(LINEAR_ROWS, { x: xi, w: x }), /^MiniCPMLinearRows: .*float/],
    ];
    for (const [fn, re] of cases) {
      let err: unknown;
      try { fn(); } catch (e) { err = e; }
      expect(err, String(re)).toBeInstanceOf(NativeOpError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(re);
    }
    tf.dispose([x, w, s, xi, x4, cs]);
  });
});

describe.runIf(native.ok)('MiniCPMReadTensor', () => {
  it.runIf(ops?.ok === true)('reads F32, BF16 and F16 tensors exactly as the JavaScript reader does', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { SafetensorsFile } = await import('../src/weights/safetensors.ts');
    const { writeSafetensors } = await import('../src/weights/safetensors_writer.ts');
    const { readTensorNative } = await import('../src/ops/native_kernels.ts');
    await initBackend('tensorflow');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'read-')), 'w.safetensors');
    const data = rand(1000 * 37 + 5, 9).map((v, i) => (i % 97 === 0 ? v * 1e4 : v));
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [37, 5], data: data.subarray(0, 185) },
      { name: 'b', dtype: 'BF16', shape: [1000, 37], data: data.subarray(5, 37005) },
      { name: 'c', dtype: 'F16', shape: [7, 3], data: data.subarray(0, 21) },
      { name: 'd', dtype: 'BF16', shape: [3], data: data.subarray(0, 3) },
    ]);
    const f = SafetensorsFile.open(file);
    for (const k of ['a', 'b', 'c', 'd']) {
      const t = readTensorNative(f.location(k), f.info(k).shape)!;
      expect(t, k).toBeDefined();
      expect(t.shape).toEqual(f.info(k).shape);
      expect(Array.from(t.dataSync()), k).toEqual(Array.from(f.readFloat32(k)));
      t.dispose();
    }
    f.close();
  });
});

describe.runIf(native.ok)('MiniCPMNorm', () => {
  it.runIf(ops?.ok === true)('LayerNorm and RMSNorm equal their TF.js-op versions (rtol 1e-5)', async () => {
    const { layerNorm, layerNormOps } = await import('../src/layers/layer_norm.ts');
    const { rmsNorm, rmsNormOps } = await import('../src/layers/rms_norm.ts');
    await initBackend('tensorflow');
    for (const [R, D] of [[1, 2304], [80, 256], [1024, 96], [3, 7]]) {
      const x = tf.tensor2d(rand(R * D, R * 7 + D), [R, D]).mul(3).add(0.5);
      const w = tf.tensor1d(rand(D, D + 1)), b = tf.tensor1d(rand(D, D + 2));
      const pairs: [string, tf.Tensor, tf.Tensor][] = [
        ['layer', layerNorm(x, w, b, 1e-6), layerNormOps(x, w, b, 1e-6)],
        ['rms', rmsNorm(x.reshape([1, R, D]), w, 1e-5), rmsNormOps(x.reshape([1, R, D]), w, 1e-5)],
      ];
      for (const [kind, mine, ref] of pairs) {
        expect(mine.shape).toEqual(ref.shape);
        expectClose(`${kind} R=${R} D=${D}`, mine.dataSync() as Float32Array, ref.dataSync() as Float32Array, mine.shape, ref.shape,
          { rtol: 1e-5, atol: 1e-5 });
      }
      tf.dispose([x, w, b, ...pairs.flatMap((p) => [p[1], p[2]])]);
    }
  });
});

describe.runIf(native.ok)('MiniCPMSoftmax', () => {
  it.runIf(ops?.ok === true)('equals tf.softmax, masked rows included (rtol 1e-5)', async () => {
    const { softmaxNative } = await import('../src/ops/native_kernels.ts');
    const { softmaxOps } = await import('../src/layers/attention.ts');
    await initBackend('tensorflow');
    for (const shape of [[1, 16, 64, 1024], [2, 3, 5, 13], [1, 36, 1, 86], [7]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tf.tensor(rand(n, n % 1000).map((v, i) => (i % 11 === 3 ? -3.4e38 : v * 30)), shape);
      const mine = softmaxNative(x)!, ref = softmaxOps(x);
      expectClose(`softmax [${shape}]`, mine.dataSync() as Float32Array, ref.dataSync() as Float32Array, mine.shape, ref.shape,
        { rtol: 1e-5, atol: 1e-7 });
      tf.dispose([x, mine, ref]);
    }
  });
});

describe.runIf(native.ok)('MiniCPMBiasGelu', () => {
  it.runIf(ops?.ok === true)('equals the exact-erf GELU of x + b in TF.js ops (atol 2e-6)', async () => {
    const { biasGeluNative } = await import('../src/ops/native_kernels.ts');
    const { biasGeluOps } = await import('../src/layers/mlp.ts');
    await initBackend('tensorflow');
    for (const [R, D] of [[1024, 358], [3, 13], [1, 4304]]) {
      const x = tf.tensor2d(rand(R * D, R + D).map((v) => v * 6), [R, D]), b = tf.tensor1d(rand(D, D));
      const mine = biasGeluNative(x, b)!, ref = biasGeluOps(x, b);
      // A&S 7.1.26 erf is within 1.5e-7 of erf; GELU scales that by |v|/2 <= 3.5.
      expectClose(`gelu R=${R} D=${D}`, mine.dataSync() as Float32Array, ref.dataSync() as Float32Array, mine.shape, ref.shape,
        { rtol: 1e-6, atol: 2e-6 });
      tf.dispose([x, b, mine, ref]);
    }
  });
});

describe.runIf(native.ok)('MiniCPMRotary', () => {
  it.runIf(ops?.ok === true)('equals the TF.js-op rotary bit for bit', async () => {
    const { applyRotaryOps, rotaryTables } = await import('../src/layers/rotary.ts');
    const { rotaryNative } = await import('../src/ops/native_kernels.ts');
    await initBackend('tensorflow');
    for (const [B, H, T] of [[1, 36, 1], [3, 4, 1], [1, 2, 80]]) {
      const { cos, sin } = rotaryTables(Array.from({ length: T }, (_, i) => 7 + i * 3), 64, 10000);
      const x = tf.tensor4d(rand(B * H * T * 64, B + H + T), [B, H, T, 64]);
      const mine = rotaryNative(x, cos, sin)!, ref = applyRotaryOps(x, cos, sin);
      expect(Array.from(mine.dataSync())).toEqual(Array.from(ref.dataSync()));
      tf.dispose([cos, sin, x, mine, ref]);
    }
  });
});
