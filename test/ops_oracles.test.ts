// Fast TF.js kernels against their slow, loop-based oracles.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { aaBicubicWeights, plainBicubicWeights, resizeBicubic, resizeBicubicSlow } from '../src/ops/bicubic.ts';
import { attentionSlow, SCORES_CHUNK_BYTES, scaledDotProductAttention } from '../src/layers/attention.ts';
import { applyRotary, applyRotarySlow, rotaryTables } from '../src/layers/rotary.ts';
import { layerNorm } from '../src/layers/layer_norm.ts';
import { rmsNorm } from '../src/layers/rms_norm.ts';
import { mulberry32 } from '../src/model/rng.ts';
import { expectClose } from './helpers/expect_close.ts';

function randn(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}
const tol = { rtol: 1e-5, atol: 1e-5 };
const backends = nativeAvailable().ok ? ['tensorflow', 'cpu'] : ['cpu'];

describe.each(backends)('oracles on %s', (backend) => {
  it.each([
    ['aa', 27, 27, 32, 32], ['aa', 27, 27, 20, 24], ['aa', 8, 8, 32, 32], ['aa', 10, 7, 3, 13],
    ['plain', 8, 8, 32, 32], ['plain', 8, 8, 5, 5], ['plain', 6, 9, 17, 4],
  ] as const)('bicubic %s %ix%i -> %ix%i matches the per-pixel loop', async (kind, inH, inW, outH, outW) => {
    await initBackend(backend);
    const C = 5;
    const data = randn(inH * inW * C, inH * 100 + outW);
    const fast = tf.tidy(() => resizeBicubic(tf.tensor3d(data, [inH, inW, C]), outH, outW, kind));
    const slow = resizeBicubicSlow(data, inH, inW, C, outH, outW, kind);
    expectClose(`bicubic ${kind}`, fast.dataSync() as Float32Array, Float32Array.from(slow), fast.shape, [outH, outW, C], tol);
    fast.dispose();
  });

  it.each([
    [false, 1, 7, 7, 16], [true, 1, 9, 9, 8], [true, 2, 3, 10, 8], [false, 2, 64, 100, 32],
  ] as const)('attention causal=%s B=%i Tq=%i Tk=%i d=%i matches the loop', async (causal, B, Tq, Tk, d) => {
    await initBackend(backend);
    const H = 3;
    const q = randn(B * H * Tq * d, 1), k = randn(B * H * Tk * d, 2), v = randn(B * H * Tk * d, 3);
    const scale = 1 / Math.sqrt(d);
    for (const first of [false, true]) {
      const out = tf.tidy(() => scaledDotProductAttention(tf.tensor4d(q, [B, H, Tq, d]), tf.tensor4d(k, [B, H, Tk, d]),
        tf.tensor4d(v, [B, H, Tk, d]), { scale, causal, scaleQueryFirst: first }));
      const got = out.dataSync() as Float32Array;
      for (let bh = 0; bh < B * H; bh++) {
        const ref = attentionSlow(q.subarray(bh * Tq * d, (bh + 1) * Tq * d), k.subarray(bh * Tk * d, (bh + 1) * Tk * d),
          v.subarray(bh * Tk * d, (bh + 1) * Tk * d), Tq, Tk, d, d, scale, causal);
        expectClose(`attention head ${bh}`, got.subarray(bh * Tq * d, (bh + 1) * Tq * d), Float32Array.from(ref), [Tq, d], [Tq, d], tol);
      }
      out.dispose();
    }
  });

  it.each([[false, 1, 5], [true, 2, 3]] as const)(
    'attention whose scores exceed the chunk (causal=%s, B=%i, H=%i): a group of heads at a time, as the loop and the one-pass path',
    async (causal, B, H) => {
      await initBackend(backend);
      // Scores of B x Tq x Tk floats per head: the chunk holds 2 heads (H = 5: groups 2, 2, 1; H = 3: 2, 1).
      const d = 8, Tq = 512, Tk = Math.floor(SCORES_CHUNK_BYTES / (2 * 4 * B * Tq));
      expect(Math.floor(SCORES_CHUNK_BYTES / (B * Tq * Tk * 4))).toBe(2);
      const q = randn(B * H * Tq * d, 4), k = randn(B * H * Tk * d, 5), v = randn(B * H * Tk * d, 6);
      const scale = 1 / Math.sqrt(d);
      const before = tf.memory().numTensors;
      const [chunked, onePass] = tf.tidy(() => {
        const [Q, K, V] = [[q, Tq], [k, Tk], [v, Tk]].map(([x, T]) => tf.tensor4d(x as Float32Array, [B, H, T as number, d]));
        // A probabilities hook (the identity here) sees all heads at once: the one-pass path.
        return [scaledDotProductAttention(Q, K, V, { scale, causal }),
          scaledDotProductAttention(Q, K, V, { scale, causal, probs: (p) => p })];
      });
      const got = chunked.dataSync() as Float32Array;
      expectClose('chunked vs one pass', got, onePass.dataSync() as Float32Array, chunked.shape, onePass.shape, { rtol: 1e-6, atol: 1e-7 });
      for (const bh of [0, B * H - 1]) { // the first group's first head, the last (partial) group's last
        const b = Math.floor(bh / H);
        const ref = attentionSlow(q.subarray(bh * Tq * d, (bh + 1) * Tq * d), k.subarray(bh * Tk * d, (bh + 1) * Tk * d),
          v.subarray(bh * Tk * d, (bh + 1) * Tk * d), Tq, Tk, d, d, scale, causal);
        expectClose(`attention batch ${b} head ${bh % H}`, got.subarray(bh * Tq * d, (bh + 1) * Tq * d), Float32Array.from(ref), [Tq, d], [Tq, d], tol);
      }
      tf.dispose([chunked, onePass]);
      expect(tf.memory().numTensors).toBe(before);
    });

  it('rotary (rotate_half) matches the per-position formula, at positions past 2048 too', async () => {
    await initBackend(backend);
    const d = 64, positions = [0, 1, 5, 79, 2047, 2048, 3000];
    const x = randn(2 * positions.length * d, 9);
    const out = tf.tidy(() => {
      const { cos, sin } = rotaryTables(positions, d, 10000);
      return applyRotary(tf.tensor4d(x, [1, 2, positions.length, d]), cos, sin);
    });
    const got = out.dataSync() as Float32Array;
    for (let h = 0; h < 2; h++) positions.forEach((p, t) => {
      const off = (h * positions.length + t) * d;
      expectClose(`rotary pos ${p}`, got.subarray(off, off + d), Float32Array.from(applyRotarySlow(x.subarray(off, off + d), p, 10000)),
        [d], [d], { rtol: 1e-5, atol: 1e-5 });
    });
    out.dispose();
  });

  it('layer norm and RMS norm match their formulas', async () => {
    await initBackend(backend);
    const n = 4, C = 96, x = randn(n * C, 4), w = randn(C, 5), b = randn(C, 6);
    const ln = tf.tidy(() => layerNorm(tf.tensor2d(x, [n, C]), tf.tensor1d(w), tf.tensor1d(b), 1e-6).dataSync() as Float32Array);
    const rms = tf.tidy(() => rmsNorm(tf.tensor2d(x, [n, C]), tf.tensor1d(w), 1e-5).dataSync() as Float32Array);
    const eln = new Float32Array(n * C), erms = new Float32Array(n * C);
    for (let r = 0; r < n; r++) {
      const row = Array.from(x.subarray(r * C, (r + 1) * C));
      const mean = row.reduce((s, v) => s + v, 0) / C;
      const v = row.reduce((s, x0) => s + (x0 - mean) ** 2, 0) / C;
      const ms = row.reduce((s, x0) => s + x0 * x0, 0) / C;
      row.forEach((x0, c) => {
        eln[r * C + c] = ((x0 - mean) / Math.sqrt(v + 1e-6)) * w[c] + b[c];
        erms[r * C + c] = (x0 / Math.sqrt(ms + 1e-5)) * w[c];
      });
    }
    expectClose('layer_norm', ln, eln, [n, C], [n, C], tol);
    expectClose('rms_norm', rms, erms, [n, C], [n, C], tol);
  });
});

describe('bicubic weights', () => {
  it('each output row of both kernels sums to 1 and the 27->32 window has 2-5 taps', () => {
    for (const [inS, outS] of [[27, 32], [8, 32], [32, 27], [5, 2]]) {
      for (const m of [aaBicubicWeights(inS, outS), plainBicubicWeights(inS, outS)]) {
        for (let i = 0; i < outS; i++) {
          let s = 0;
          for (let j = 0; j < inS; j++) s += m[i * inS + j];
          expect(Math.abs(s - 1)).toBeLessThan(1e-12);
        }
      }
    }
    const aa = aaBicubicWeights(27, 32);
    const taps = Array.from({ length: 32 }, (_, i) => Array.from(aa.subarray(i * 27, (i + 1) * 27)).filter((v) => v !== 0).length);
    expect(Math.min(...taps)).toBeGreaterThanOrEqual(2); // truncated at the edges
    expect(Math.max(...taps)).toBeLessThanOrEqual(5);
  });

  it('plain bicubic at the same size is the identity; antialiased differs from plain when downscaling', () => {
    const id = plainBicubicWeights(8, 8);
    for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) expect(id[i * 8 + j]).toBeCloseTo(i === j ? 1 : 0, 12);
    const aa = aaBicubicWeights(32, 8), plain = plainBicubicWeights(32, 8);
    let diff = 0;
    for (let i = 0; i < aa.length; i++) diff = Math.max(diff, Math.abs(aa[i] - plain[i]));
    expect(diff).toBeGreaterThan(0.01);
  });
});
