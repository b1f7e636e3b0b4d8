// GFLOP/s per TF.js backend on the model's matmul shapes, and the achieved
// weight bandwidth on the decode-shaped product.
//   npm run bench:backend [-- --backends tensorflow,cpu --seconds 2]
// Each figure is the best of repeated timed runs after a warm-up, including
// dataSync(); the weights rotate over several distinct matrices so the decode
// product reads from memory, not from the caches.
import * as tf from '../src/tfjs.ts';
import { LINEAR_ROWS } from '../src/ops/native_kernels.ts';
import { BACKENDS, initBackend, nativeAvailable } from '../src/backend/index.ts';

interface Shape { name: string; m: number; k: number; n: number; transposeB: boolean; native?: boolean }
const SHAPES: Shape[] = [
  { name: 'decode  [1,2304]x[5760,2304]^T (MatMul)', m: 1, k: 2304, n: 5760, transposeB: true },
  { name: 'decode  [1,2304]x[5760,2304]^T (native kernel)', m: 1, k: 2304, n: 5760, transposeB: true, native: true },
  { name: 'decode  [1,2304]x[2304,2304]^T (native kernel)', m: 1, k: 2304, n: 2304, transposeB: true, native: true },
  { name: 'prefill [80,2304]x[5760,2304]^T', m: 80, k: 2304, n: 5760, transposeB: true },
  { name: 'vit     [1024,1152]x[4304,1152]^T', m: 1024, k: 1152, n: 4304, transposeB: true },
  { name: 'vit     [1024,1152]x[1152,4304]', m: 1024, k: 1152, n: 4304, transposeB: false },
];

const args = process.argv.slice(2);
const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const seconds = Number(arg('seconds') ?? 2);
const wanted = (arg('backends') ?? (nativeAvailable().ok ? 'tensorflow,cpu' : 'cpu')).split(',');

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
  for (const s of SHAPES) {
    if (s.native && (b !== 'tensorflow' || tf.getKernel(LINEAR_ROWS, 'tensorflow') === undefined)) continue;
    const slow = b === 'cpu' && s.m * s.k * s.n > 1e8;
    const copies = s.m === 1 ? Math.ceil(500e6 / (s.k * s.n * 4)) : 1; // decode: distinct weights (0.5 GB) so each product streams from memory
    const ws = Array.from({ length: copies }, (_, i) =>
      tf.randomNormal(s.transposeB ? [s.n, s.k] : [s.k, s.n], 0, 1, 'float32', i + 1) as tf.Tensor2D);
    const x = tf.randomNormal([s.m, s.k], 0, 1, 'float32', 99) as tf.Tensor2D;
    let i = 0;
    const ms = timeIt(() => {
      const w = ws[i++ % copies];
      const y = s.native ? (tf.engine().runKernel(LINEAR_ROWS, { x, w }) as tf.Tensor) : tf.matMul(x, w, false, s.transposeB);
      y.dataSync();
      y.dispose();
    }, slow ? 1 : seconds * 1000, slow ? 1 : 10_000);
    const gflops = (2 * s.m * s.k * s.n) / ms / 1e6;
    const gbps = (s.k * s.n * 4) / ms / 1e6;
    rows.push(`| ${b} | ${s.name} | ${ms.toFixed(2)} | ${gflops.toFixed(1)} | ${s.m === 1 ? gbps.toFixed(1) : ''} |`);
    console.error(rows[rows.length - 1]);
    tf.dispose([...ws, x]);
  }
}
console.log(['', `matmul on ${new Date().toISOString().slice(0, 10)}, ${process.platform}/${process.arch}, Node ${process.version}`, '',
  '| backend | shape | best ms | GFLOP/s | weight GB/s |', '|---|---|---|---|---|', ...rows].join('\n'));
