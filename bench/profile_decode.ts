// Where a decode step's time goes, per TF.js kernel (tf.profile), on a model directory.
//   tsx bench/profile_decode.ts DIR [steps]
import * as tf from '../src/tfjs.ts';
import { initBackend } from '../src/backend/index.ts';
import { loadModel } from '../src/model/load.ts';

const dir = process.argv[2];
await initBackend('tensorflow');
const model = loadModel(dir);
const llm = model.llm;
const cache = llm.newCache();
const prompt = llm.embed(Array.from({ length: 80 }, (_, i) => (i * 7919) % model.cfg.llm.vocab));
tf.dispose(llm.forward(prompt, { cache, logits: 'last' }));
const stepOnce = () => {
  const x = llm.embed([42]);
  const y = llm.forward(x, { cache, logits: 'last' });
  y.dataSync();
  tf.dispose([x, y]);
};
for (let i = 0; i < 2; i++) stepOnce();
let t = performance.now();
const steps = Number(process.argv[3] ?? 3);
for (let i = 0; i < steps; i++) stepOnce();
const wall = (performance.now() - t) / steps;
const info = await tf.profile(() => stepOnce());
const byKernel = new Map<string, { ms: number; n: number }>();
let total = 0;
for (const k of info.kernels) {
  const ms = (k as unknown as { kernelTimeMs: number }).kernelTimeMs;
  const shapes = k.inputShapes.map((s) => `[${s}]`).join('x');
  const key = `${k.name} ${k.name.includes('MatMul') ? shapes : ''}`;
  const e = byKernel.get(key) ?? { ms: 0, n: 0 };
  e.ms += ms; e.n++; total += ms;
  byKernel.set(key, e);
}
console.log(`decode step: wall ${wall.toFixed(1)} ms, ${info.kernels.length} kernels, kernel sum ${total.toFixed(1)} ms`);
for (const [k, v] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
  console.log(`${v.ms.toFixed(1).padStart(8)} ms ${String(v.n).padStart(5)}x  ${k}`);
}
cache.dispose();
model.dispose();
