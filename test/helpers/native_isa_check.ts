// Run by test/native_ops.test.ts in a child process with MINICPMV_ISA=avx2 or scalar (the addon reads it
// when it loads): the narrower kernels of MiniCPMLinear, MiniCPMWiden and MiniCPMCachedAttention against
// their TF.js references. Prints one JSON line: the ISA in use and, per op, the worst |a - e| as a fraction of
// the tolerance policy's allowance atol + rtol |e| (rtol = atol = 1e-5; <= 1 passes).
import * as tf from '../../src/tfjs.ts';
import { initBackend } from '../../src/backend/index.ts';
import { cachedAttentionOps } from '../../src/layers/attention.ts';
import { linearOps } from '../../src/layers/linear.ts';
import { cachedAttentionNative, linearNative, widenNative } from '../../src/ops/native_kernels.ts';
import { PackedWeight, widenOps } from '../../src/ops/packed_weight.ts';
import { mulberry32 } from '../../src/model/rng.ts';

const backend = await initBackend('tensorflow');
const rand = (n: number, seed: number) => { const r = mulberry32(seed); return Float32Array.from({ length: n }, () => r() * 2 - 1); };
const worst = (a: tf.Tensor, e: tf.Tensor) => {
  const x = a.dataSync(), y = e.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]) / (1e-5 + 1e-5 * Math.abs(y[i])));
  return m;
};
const out: Record<string, number | string> = { isa: backend.attempts[0].nativeOps?.detail ?? 'none' };
let linear = 0, bitwise = 1;
for (const [R, K, N] of [[1, 70, 13], [3, 64, 9], [8, 38, 5], [20, 48, 11], [9, 2, 3]]) {
  const x = tf.tensor2d(rand(R * K, R), [R, K]);
  const halves = Uint16Array.from(rand(N * K, N), (v) => (new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16));
  const packed = new PackedWeight(tf.tensor2d(new Int32Array(halves.buffer), [N, K / 2], 'int32'), 'bf16');
  const wide = widenOps(packed.packed, 'bf16') as tf.Tensor2D;
  const a = linearNative(x, packed)!, f = linearNative(x, wide)!, e = linearOps(x, wide);
  linear = Math.max(linear, worst(a, e));
  if (Array.from(a.dataSync()).some((v, i) => v !== f.dataSync()[i])) bitwise = 0;
  tf.dispose([x, wide, a, f, e]);
  packed.dispose();
}
out.linear = linear;
out.bf16EqualsF32 = bitwise;
const halves = tf.tensor2d(new Int32Array(Uint16Array.from({ length: 64 }, (_, i) => (i * 977) & 0x7bff).buffer), [2, 16], 'int32');
const w1 = widenNative(halves, 'f16')!, w2 = widenOps(halves, 'f16');
out.widen = worst(w1, w2);
const [B, T, past, H, d, S, C] = [2, 1, 5, 2, 13, 2, 8];
const P = past + T;
const idx = tf.tensor2d(Int32Array.from({ length: B * P }, (_, i) => (i % P >= past ? Math.floor(i / P) : 0)), [B, P], 'int32');
const q = tf.tensor2d(rand(B * T * H * d, 1), [B * T, H * d]), k = tf.tensor2d(rand(B * T * H * d, 2), [B * T, H * d]);
const kc = tf.tensor4d(rand(S * H * C * d, 3), [S, H, C, d]);
const ref = cachedAttentionOps(q, k, k, kc, kc.clone(), idx, H, 0.3);
const mine = cachedAttentionNative(q, k, k, kc.clone(), kc.clone(), idx, H, 0.3)!;
out.attention = worst(mine, ref.y);
console.log(JSON.stringify(out));
