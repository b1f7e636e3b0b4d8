// The project's own TensorFlow ops (native/minicpmv_ops.cc): built at install, registered into
// tfjs-node's TensorFlow, each equal to its TF.js-op reference within the tolerance policy.
import { ci, named, requirement, unmet } from './helpers/requires.ts';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadNativeOps } from '../src/backend/native_ops.ts';
import { BIAS_GELU, CACHED_ATTENTION, KV_GROW, LINEAR, NORM, NativeOpError, ROTARY, SOFTMAX, WIDEN, cachedAttentionNative, kvGrowNative, linearManyNative, linearNative, rotaryNative, runNative, widenNative } from '../src/ops/native_kernels.ts';
import { PackedWeight, widenOps } from '../src/ops/packed_weight.ts';
import { linear, linearOps } from '../src/layers/linear.ts';
import { mulberry32 } from '../src/model/rng.ts';
import { expectClose } from './helpers/expect_close.ts';

const native = nativeAvailable();
const ops = native.ok ? loadNativeOps() : undefined;
const opsReq = requirement(ops?.ok === true, native.ok
  ? `the project's native ops do not load (${ops?.detail}; npm install builds them where tfjs-node's libtensorflow exists)`
  : `the native tensorflow backend does not load (${native.reason})`);
const ciReq = ci();
const rand = (n: number, seed: number) => { const r = mulberry32(seed); return Float32Array.from({ length: n }, () => r() * 2 - 1); };

describe.skipIf(unmet(ciReq))(named('native ops under CI', ciReq), () => {
  it('are built and registered where CI runs', () => {
    expect(native.ok, native.reason).toBe(true);
    expect(ops?.ok, ops?.detail).toBe(true);
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMLinear', opsReq), () => {
  /** bf16 bit patterns (two per int32) of the values, and those values widened back (exactly representable). */
  const bf16Weight = (vals: Float32Array, N: number, K: number) => {
    const u = new Uint32Array(vals.buffer.slice(0));
    const h = new Uint16Array(N * K);
    for (let i = 0; i < h.length; i++) h[i] = u[i] >>> 16;
    const wide = new Float32Array(new Uint32Array(Array.from(h, (v) => v << 16)).buffer);
    return { packed: new PackedWeight(tf.tensor2d(new Int32Array(h.buffer), [N, K / 2], 'int32'), 'bf16'), wide: tf.tensor2d(wide, [N, K]) };
  };

  it('equals MatMul for float32 and packed bf16 weights, any rows (rtol 1e-5, atol 1e-4); bf16 is bit for bit its widening', async () => {
    await initBackend('tensorflow');
    expect(describeBackend(await initBackend('tensorflow'))).toMatch(/native ops: (avx512|avx2\+fma|scalar)/);
    for (const [R, K, N] of [[1, 2304, 37], [1, 14, 9], [3, 2304, 257], [8, 100, 64], [2, 8, 5], [9, 64, 13], [80, 256, 97], [37, 1152, 70], [5, 6, 3]]) {
      const x = tf.tensor2d(rand(R * K, R + K), [R, K]);
      const { packed, wide } = bf16Weight(rand(N * K, N), N, K);
      const ref = linearOps(x, wide);
      const f32 = linearNative(x, wide)!, b16 = linearNative(x, packed)!, viaLinear = linear(x, packed);
      // Only the summation order differs from MatMul: K terms of size ~1 leave absolute differences of a few 1e-5.
      expectClose(`R=${R} K=${K} N=${N}`, b16.dataSync() as Float32Array, ref.dataSync() as Float32Array, b16.shape, ref.shape,
        { rtol: 1e-5, atol: 1e-4 });
      expect(Array.from(b16.dataSync())).toEqual(Array.from(f32.dataSync()));
      expect(Array.from(viaLinear.dataSync())).toEqual(Array.from(b16.dataSync()));
      // Several weights in one call give what one call each gives.
      const second = bf16Weight(rand(7 * K, N + 1), 7, K);
      const [m0, m1] = linearManyNative(x, [packed, second.packed])!, alone = linearNative(x, second.packed)!;
      expect(Array.from(m0.dataSync())).toEqual(Array.from(b16.dataSync()));
      expect(Array.from(m1.dataSync())).toEqual(Array.from(alone.dataSync()));
      tf.dispose([x, wide, ref, f32, b16, viaLinear, m0, m1, alone, second.wide]);
      packed.dispose();
      second.packed.dispose();
    }
  });

  it('f16 weights widen exactly (MiniCPMWiden equals the JavaScript widening)', async () => {
    await initBackend('tensorflow');
    const halves = Uint16Array.from({ length: 64 * 6 }, (_, i) => (i * 2654435761) & 0xffff);
    for (let i = 0; i < halves.length; i++) if ((halves[i] & 0x7c00) === 0x7c00) halves[i] &= 0xbfff; // no Inf/NaN
    const packed = tf.tensor2d(new Int32Array(halves.buffer), [6, 32], 'int32');
    for (const dtype of ['f16', 'bf16'] as const) {
      const mine = widenNative(packed, dtype)!, ref = widenOps(packed, dtype);
      expect(mine.shape).toEqual([6, 64]);
      expect(Array.from(mine.dataSync())).toEqual(Array.from(ref.dataSync()));
      tf.dispose([mine, ref]);
    }
    packed.dispose();
  });

  it('refuses inputs of the wrong shape or type with one line', async () => {
    await initBackend('tensorflow');
    const x = tf.zeros([2, 5]), w = tf.zeros([3, 4]), wi = tf.zeros([3, 2], 'int32');
    const one = (w0: tf.Tensor, T: string, wtype: string) => () => runNative(LINEAR, { x, w0 }, { N: 1, T, wtype });
    expect(one(w, 'float32', 'f32')).toThrow(/^MiniCPMLinear: expects x \[M, K\] and w \[N, K\]$/);
    expect(one(wi, 'int32', 'bf16')).toThrow(/^MiniCPMLinear: expects x \[M, K\] and packed w \[N, K\/2\]$/);
    expect(one(wi, 'int32', 'f32')).toThrow(/^MiniCPMLinear: w must be float32 for wtype f32/);
    expect(one(w, 'float32', 'int8')).toThrow(/^MiniCPMLinear: wtype must be f32, bf16 or f16, got "int8"$/);
    const nine: tf.NamedTensorMap = { x };
    for (let i = 0; i < 9; i++) nine[`w${i}`] = tf.zeros([3, 5]);
    expect(() => runNative(LINEAR, nine, { N: 9, T: 'float32', wtype: 'f32' })).toThrow(/^MiniCPMLinear: takes 1 to 8 weights$/);
    tf.dispose(Object.values(nine).filter((t) => t !== x));
    expect(() => runNative(WIDEN, { x: w }, { wtype: 'bf16' })).toThrow(/^MiniCPMWiden: .*int32/);
    tf.dispose([x, w, wi]);
  });
});

describe.skipIf(unmet(opsReq))(named('every native op refuses bad input with one line (NativeOpError)', opsReq), () => {
  it('wrong ranks, sizes, dtypes and attributes', async () => {
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
      [() => runNative(LINEAR, { x: xi, w0: x }, { N: 1, T: 'float32', wtype: 'f32' }), /^MiniCPMLinear: .*float/],
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

describe.skipIf(unmet(opsReq))(named('MiniCPMReadTensor', opsReq), () => {
  it('reads F32, BF16 and F16 tensors exactly as the JavaScript reader does', async () => {
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
      { name: 'e', dtype: 'BF16', shape: [10, 6], data: data.subarray(7, 67) },
      { name: 'g', dtype: 'F16', shape: [4, 8], data: data.subarray(9, 41) },
    ]);
    const f = SafetensorsFile.open(file);
    for (const k of ['a', 'b', 'c', 'd']) {
      const t = readTensorNative(f.location(k), f.info(k).shape)!;
      expect(t, k).toBeDefined();
      expect(t.shape).toEqual(f.info(k).shape);
      expect(Array.from(t.dataSync()), k).toEqual(Array.from(f.readFloat32(k)));
      t.dispose();
    }
    // Packed: the stored 16-bit values as they are in the file, two per int32 word.
    for (const k of ['e', 'g']) {
      const at = f.location(k), shape = f.info(k).shape;
      const t = readTensorNative(at, shape, { packed: true })!;
      expect(t.dtype).toBe('int32');
      expect(t.shape).toEqual([shape[0], shape[1] / 2]);
      const bytes = Buffer.alloc(at.count * 2);
      fs.readSync(at.fd, bytes, 0, bytes.length, at.offset);
      expect(Array.from(t.dataSync())).toEqual(Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, at.count / 2)));
      t.dispose();
    }
    expect(() => readTensorNative(f.location('a'), [37, 5], { packed: true })).toThrow(/only BF16\/F16 tensors with an even last dimension/);
    expect(() => readTensorNative(f.location('b'), [1000, 37], { packed: true })).toThrow(/only BF16\/F16 tensors with an even last dimension/);
    f.close();
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMNorm', opsReq), () => {
  it('LayerNorm and RMSNorm equal their TF.js-op versions (rtol 1e-5)', async () => {
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

describe.skipIf(unmet(opsReq))(named('MiniCPMSoftmax', opsReq), () => {
  it('equals tf.softmax, masked rows included (rtol 1e-5)', async () => {
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

describe.skipIf(unmet(opsReq))(named('MiniCPMBiasGelu', opsReq), () => {
  it('equals the exact-erf GELU of x + b in TF.js ops (atol 2e-6)', async () => {
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

describe.skipIf(unmet(opsReq))(named('MiniCPMRotary', opsReq), () => {
  it('equals the TF.js-op rotary bit for bit', async () => {
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

describe.skipIf(unmet(opsReq))(named('MiniCPMCachedAttention', opsReq), () => {
  it('equals the TF.js ops (scatter, gather through the slot table, SDPA) and writes the same caches', async () => {
    const { cachedAttentionOps } = await import('../src/layers/attention.ts');
    await initBackend('tensorflow');
    // [B, T, past, H, Hkv, d, slots, capacity]: prefill, decode, beams sharing slots, grouped kv heads; from 16
    // positions on a row's scores are formed 16 keys at a time (the rest one by one): decode, beams and prefill
    // rows across that, d of 16, 32 and 64.
    for (const [B, T, past, H, Hkv, d, S, C] of [[1, 5, 0, 4, 4, 64, 1, 8], [1, 1, 7, 4, 4, 64, 1, 9], [3, 1, 6, 2, 2, 16, 3, 8],
      [2, 3, 4, 6, 2, 8, 2, 12], [3, 1, 0, 2, 1, 13, 4, 2], [1, 1, 40, 4, 4, 64, 1, 48], [3, 1, 37, 2, 2, 64, 3, 40],
      [1, 21, 0, 2, 2, 64, 1, 24], [2, 2, 30, 4, 2, 32, 3, 40], [1, 1, 47, 2, 2, 16, 1, 48]]) {
      const P = past + T;
      // Rows of the slot table: the prefix in a few slots (beams share it), each sequence's new positions in its own slot.
      const table = new Int32Array(B * P);
      for (let b = 0; b < B; b++) for (let p = 0; p < P; p++) table[b * P + p] = p >= past ? b : (p * 7 + b * (p % 2)) % S;
      const idx = tf.tensor2d(table, [B, P], 'int32');
      const q = tf.tensor2d(rand(B * T * H * d, 1 + B), [B * T, H * d]).mul(2) as tf.Tensor2D;
      const k = tf.tensor2d(rand(B * T * Hkv * d, 2 + B), [B * T, Hkv * d]) as tf.Tensor2D;
      const v = tf.tensor2d(rand(B * T * Hkv * d, 3 + B), [B * T, Hkv * d]) as tf.Tensor2D;
      const kc = tf.tensor4d(rand(S * Hkv * C * d, 4), [S, Hkv, C, d]), vc = tf.tensor4d(rand(S * Hkv * C * d, 5), [S, Hkv, C, d]);
      const ref = cachedAttentionOps(q, k, v, kc, vc, idx, H, 1 / Math.sqrt(d));
      const kcN = kc.clone(), vcN = vc.clone();
      const before = tf.memory().numTensors;
      const mine = cachedAttentionNative(q, k, v, kcN, vcN, idx, H, 1 / Math.sqrt(d))!;
      expect(tf.memory().numTensors).toBe(before + 1); // the output only: the caches were written in place
      const what = `B=${B} T=${T} past=${past} H=${H} Hkv=${Hkv} d=${d}`;
      expectClose(what, mine.dataSync() as Float32Array, ref.y.dataSync() as Float32Array, mine.shape, ref.y.shape, { rtol: 1e-5, atol: 1e-5 });
      expect(Array.from(kcN.dataSync()), `${what} keys`).toEqual(Array.from(ref.kcache.dataSync()));
      expect(Array.from(vcN.dataSync()), `${what} values`).toEqual(Array.from(ref.vcache.dataSync()));
      tf.dispose([idx, q, k, v, kc, vc, ref.y, ref.kcache, ref.vcache, kcN, vcN, mine]);
    }
  });

  it('refuses a table that would write one cache cell twice, slots outside the cache, wrong shapes', async () => {
    await initBackend('tensorflow');
    const q = tf.zeros([2, 8]), k = tf.zeros([2, 8]), kc = tf.zeros([2, 1, 4, 8]);
    const run = (idx: tf.Tensor, extra: Partial<Record<string, tf.Tensor>> = {}) => () =>
      runNative(CACHED_ATTENTION, { q, k, v: k, kcache: kc, vcache: kc, idx, ...extra }, { heads: 1, scale: 0.5 });
    const same = tf.tensor2d([0, 1, 0, 1], [2, 2], 'int32'), outside = tf.tensor2d([0, 2, 0, 1], [2, 2], 'int32');
    const long = tf.zeros([2, 5], 'int32'), fine = tf.tensor2d([0, 0, 0, 1], [2, 2], 'int32');
    expect(run(same)).toThrow(/^MiniCPMCachedAttention: two sequences write the same cache slot$/);
    expect(run(outside)).toThrow(/^MiniCPMCachedAttention: idx holds a slot outside the cache$/);
    expect(run(long)).toThrow(/^MiniCPMCachedAttention: idx covers more positions than the cache holds$/);
    expect(run(fine, { q: tf.zeros([2, 6]) })).toThrow(/^MiniCPMCachedAttention: q must be/);
    expect(() => runNative(CACHED_ATTENTION, { q, k, v: k, kcache: kc, vcache: kc, idx: fine }, { heads: 0, scale: 0.5 }))
      .toThrow(/^MiniCPMCachedAttention: heads must be >= 1/);
    tf.dispose([q, k, kc, same, outside, long, fine]);
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMRotary on the decoder\'s 2-D layout', opsReq), () => {
  it('[B*T, H*d] rows equal the TF.js ops bit for bit', async () => {
    const { applyRotaryRowsOps, rotaryTables } = await import('../src/layers/rotary.ts');
    await initBackend('tensorflow');
    for (const [B, H, T] of [[1, 36, 1], [3, 4, 1], [1, 2, 80], [2, 3, 5]]) {
      const { cos, sin } = rotaryTables(Array.from({ length: T }, (_, i) => 11 + i * 2), 64, 10000);
      const x = tf.tensor2d(rand(B * T * H * 64, B * 3 + H + T), [B * T, H * 64]);
      const mine = rotaryNative(x, cos, sin)!, ref = applyRotaryRowsOps(x, cos, sin);
      expect(Array.from(mine.dataSync())).toEqual(Array.from(ref.dataSync()));
      tf.dispose([cos, sin, x, mine, ref]);
    }
  });
});

const vectorReq = requirement(!/scalar/.test(ops?.detail ?? ''), 'this CPU has no AVX2+FMA: the scalar kernels are the only ones');
describe.skipIf(unmet(opsReq, vectorReq))(named('the narrower kernels (AVX2+FMA, scalar) on this machine', opsReq, vectorReq), () => {
  it('MINICPMV_ISA=avx2 and =scalar give the TF.js references (rtol, atol 1e-5) and bf16 = f32 bit for bit', async () => {
    const { spawnSync } = await import('node:child_process');
    const path = await import('node:path');
    const { repoRoot } = await import('./helpers/paths.ts');
    const isas = /avx512/.test(ops!.detail) ? ['avx2', 'scalar'] : ['scalar'];
    for (const isa of isas) {
      const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs'),
        path.join(repoRoot, 'test', 'helpers', 'native_isa_check.ts')], { env: { ...process.env, MINICPMV_ISA: isa }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(res.isa).toMatch(isa === 'avx2' ? /^avx2\+fma,/ : /^scalar,/);
      expect(res.linear, isa).toBeLessThanOrEqual(1);
      expect(res.bf16EqualsF32, isa).toBe(1);
      expect(res.widen, isa).toBe(0);
      expect(res.attention, isa).toBeLessThanOrEqual(1);
    }
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMKVGrow', opsReq), () => {
  it('copies each slot\'s written range, leaves the rest 0, and refuses bad input with one line', async () => {
    await initBackend('tensorflow');
    const [S0, H, C0, d] = [2, 3, 5, 4];
    const old = tf.tensor4d(rand(S0 * H * C0 * d, 11), [S0, H, C0, d]);
    const grown = kvGrowNative(old, [[0, 5], [2, 4]], 3, 8, H, d)!;
    expect(grown.shape).toEqual([3, H, 8, d]);
    const o = old.arraySync(), g = grown.arraySync();
    for (let s = 0; s < 3; s++) for (let h = 0; h < H; h++) for (let p = 0; p < 8; p++) {
      const kept = (s === 0 && p < 5) || (s === 1 && p >= 2 && p < 4);
      expect(g[s][h][p], `slot ${s} head ${h} position ${p}`).toEqual(kept ? o[s][h][p] : [0, 0, 0, 0]);
    }
    const fresh = kvGrowNative(undefined, [], 2, 3, H, d)!;
    expect(Array.from(fresh.dataSync())).toEqual(new Array(2 * H * 3 * d).fill(0));
    const lo = tf.tensor1d([0, 0], 'int32'), hi = tf.tensor1d([6, 1], 'int32');
    expect(() => runNative(KV_GROW, { old, lo, hi }, { slots: 3, capacity: 8 })).toThrow(/^MiniCPMKVGrow: each slot's range must satisfy 0 <= lo <= hi <= C0$/);
    expect(() => runNative(KV_GROW, { old, lo, hi: lo }, { slots: 1, capacity: 8 })).toThrow(/^MiniCPMKVGrow: the new cache must .*hold the old one/);
    expect(() => runNative(KV_GROW, { old, lo, hi: lo }, { slots: 0, capacity: 8 })).toThrow(/^MiniCPMKVGrow: slots and capacity must be >= 1$/);
    tf.dispose([old, grown, fresh, lo, hi]);
  });

  it('pages no slot wrote take no memory: 3 slots x 4096 positions of which one slot holds 16', async () => {
    await initBackend('tensorflow');
    const [H, C, d] = [36, 4096, 64]; // 113 MiB for 3 slots
    const small = kvGrowNative(undefined, [], 1, 16, H, d)!;
    const rss0 = process.memoryUsage().rss;
    const big = kvGrowNative(small, [[0, 16]], 3, C, H, d)!;
    const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
    expect(big.shape).toEqual([3, H, C, d]);
    expect(grew, `RSS grew ${grew.toFixed(1)} MiB for a 113 MiB cache`).toBeLessThan(16);
    tf.dispose([small, big]);
  });
});
