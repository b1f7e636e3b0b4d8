// GFLOP/s per TF.js backend on the model's product shapes, and the achieved weight bandwidth on the
// decode-shaped ones (1 row; 3 rows as beam search runs them; 8), for each way of computing x Wᵀ:
//   MatMul f32        TF's MatMul on a float32 weight (the path without the project's kernels)
//   Linear f32 / bf16 MiniCPMLinear on a float32 weight / on the bf16 weight kept packed
//   widen+MatMul bf16 MiniCPMWiden of the packed weight into a float32 scratch, then MatMul
//   npm run bench:backend [-- --backends tensorflow,cpu --seconds 2 --only decode --ways "Linear f32,Linear bf16"]
// Each figure is the best of repeated timed runs after a warm-up, including dataSync(); the weights rotate
// over several distinct matrices (~0.5 GB) for few rows, so those products read from memory, not caches.
import * as tf from '../src/tfjs.ts';
import { LINEAR, WIDEN, linearNative, runNative } from '../src/ops/native_kernels.ts';
import { PackedWeight } from '../src/ops/packed_weight.ts';
import { BACKENDS, initBackend, nativeAvailable } from '../src/backend/index.ts';

interface Shape { name: string; m: number; k: number; n: number }
const SHAPES: Shape[] = [
  { name: 'decode  [1,2304]x[5760,2304]^T', m: 1, k: 2304, n: 5760 },
  { name: 'decode  [1,2304]x[2304,2304]^T', m: 1, k: 2304, n: 2304 },
  { name: 'beam-3  [3,2304]x[5760,2304]^T', m: 3, k: 2304, n: 5760 },
  { name: 'rows-8  [8,2304]x[5760,2304]^T', m: 8, k: 2304, n: 5760 },
  { name: 'prefill [80,2304]x[5760,2304]^T', m: 80, k: 2304, n: 5760 },
  { name: 'vit     [1024,1152]x[4304,1152]^T', m: 1024, k: 1152, n: 4304 },
];
type Way = 'MatMul f32' | 'Linear f32' | 'Linear bf16' | 'widen+MatMul bf16';
const WAYS: Way[] = ['MatMul f32', 'Linear f32', 'Linear bf16', 'widen+MatMul bf16'];

const args = process.argv.slice(2);
const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const seconds = Number(arg('seconds') ?? 2);
const wanted = (arg('backends') ?? (nativeAvailable().ok ? 'tensorflow,cpu' : 'cpu')).split(',');
const only = arg('only'); // a substring of the shape names, e.g. "decode"
const ways = (arg('ways')?.split(',') ?? WAYS) as Way[];

function timeIt(fn: () => void, budgetMs: number, maxReps: number): number {
  fn(); // warm-up
  let best = Infinity, spent = 0, reps = 0;
  while (spent < budgetMs && reps < maxReps) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    best = Math.min(best, dt);
    spent += dt;
    reps++;
  }
  return best;
}

const rows: string[] = [];
for (const b of wanted) {
  if (!(BACKENDS as readonly string[]).includes(b)) throw new Error(`unknown backend ${b}`);
  await initBackend(b);
  const native = b === 'tensorflow' && tf.getKernel(LINEAR, 'tensorflow') !== undefined;
  for (const s of SHAPES.filter((x) => !only || x.name.includes(only))) {
    const slow = b === 'cpu' && s.m * s.k * s.n > 1e8;
    const copies = s.m <= 8 ? Math.ceil(500e6 / (s.k * s.n * 4)) : 1;
    const wf = Array.from({ length: copies }, (_, i) => tf.randomNormal([s.n, s.k], 0, 1, 'float32', i + 1) as tf.Tensor2D);
    // bf16 bit patterns of random normal values (high halves of floats), two per int32 word.
    const wb = wf.map((w) => tf.tidy(() => {
      const f = w.dataSync() as Float32Array, u = new Uint32Array(f.buffer, f.byteOffset, f.length);
      const h = new Uint16Array(f.length);
      for (let j = 0; j < f.length; j++) h[j] = u[j] >>> 16;
      return tf.tensor2d(new Int32Array(h.buffer), [s.n, s.k / 2], 'int32');
    }));
    const x = tf.randomNormal([s.m, s.k], 0, 1, 'float32', 99) as tf.Tensor2D;
    for (const way of WAYS.filter((w) => ways.includes(w))) {
      if (way !== 'MatMul f32' && !native) continue;
      let i = 0;
      const ms = timeIt(() => {
        const j = i++ % copies;
        const y = tf.tidy(() => way === 'MatMul f32' ? tf.matMul(x, wf[j], false, true)
          : way === 'Linear f32' ? linearNative(x, wf[j])!
          : way === 'Linear bf16' ? linearNative(x, new PackedWeight(wb[j], 'bf16'))!
          : tf.matMul(x, runNative(WIDEN, { x: wb[j] }, { wtype: 'bf16' }) as tf.Tensor2D, false, true));
        y.dataSync();
        y.dispose();
      }, slow ? 1 : seconds * 1000, slow ? 1 : 10_000);
      const gflops = (2 * s.m * s.k * s.n) / ms / 1e6;
      const gbps = (s.k * s.n * (way.endsWith('bf16') ? 2 : 4)) / ms / 1e6;
      rows.push(`| ${b} | ${s.name} | ${way} | ${ms.toFixed(2)} | ${gflops.toFixed(1)} | ${s.m <= 8 ? gbps.toFixed(1) : ''} |`);
      console.error(rows[rows.length - 1]);
    }
    tf.dispose([...wf, ...wb, x]);
  }
}
console.log(['', `products on ${new Date().toISOString().slice(0, 10)}, ${process.platform}/${process.arch}, Node ${process.version}`, '',
  '| backend | shape | way | best ms | GFLOP/s | weight GB/s |', '|---|---|---|---|---|---|', ...rows].join('\n'));
