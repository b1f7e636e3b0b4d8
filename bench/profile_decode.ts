// Where a prefill and a decode step spend their time, per TF.js kernel (tf.profile), on a model directory.
//   tsx bench/profile_decode.ts DIR [--steps 3] [--beams 1] [--context 80] [--weights-dtype auto|f32]
// The prompt is `context` token embeddings; decode steps run `beams` sequences (as beam search does).
import * as tf from '../src/tfjs.ts';
import { initBackend } from '../src/backend/index.ts';
import { loadModel } from '../src/model/load.ts';
import type { WeightsDtypeOption } from '../src/model/minicpmv.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const dir = args[0];
const steps = Number(arg('steps', '3')), beams = Number(arg('beams', '1')), context = Number(arg('context', '80'));
await initBackend('tensorflow');
const model = loadModel(dir, { weightsDtype: arg('weights-dtype', 'auto') as WeightsDtypeOption });
const llm = model.llm;
const cache = llm.newCache({ slots: beams });
const prompt = llm.embed(Array.from({ length: context }, (_, i) => (i * 7919) % model.cfg.llm.vocab));

async function report(what: string, fn: () => void, wallMs: number): Promise<void> {
  const info = await tf.profile(fn);
  const byKernel = new Map<string, { ms: number; n: number }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = (k as unknown as { kernelTimeMs: number }).kernelTimeMs;
    const key = `${k.name} ${k.name.includes('MatMul') || k.name.includes('Linear') ? k.inputShapes.map((s) => `[${s}]`).join('x') : ''}`;
    const e = byKernel.get(key) ?? { ms: 0, n: 0 };
    e.ms += ms; e.n++; total += ms;
    byKernel.set(key, e);
  }
  console.log(`${what}: wall ${wallMs.toFixed(1)} ms, ${info.kernels.length} kernels, kernel sum ${total.toFixed(1)} ms`);
  for (const [k, v] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(`${v.ms.toFixed(1).padStart(8)} ms ${String(v.n).padStart(5)}x  ${k}`);
  }
}

let t = performance.now();
tf.dispose(llm.forward(prompt, { cache, logits: 'last' }));
const prefillMs = performance.now() - t;
if (beams > 1) cache.expand(beams);
const stepOnce = () => {
  const x = tf.tidy(() => llm.embed(Array.from({ length: beams }, (_, i) => 42 + i)).reshape([beams, 1, -1]) as tf.Tensor3D);
  const y = llm.forward(x, { cache, logits: 'last' });
  y.dataSync();
  tf.dispose([x, y]);
  if (beams > 1) cache.select(Array.from({ length: beams }, (_, i) => (i === beams - 1 ? 0 : i))); // one beam dropped, one forked
};
for (let i = 0; i < 2; i++) stepOnce();
t = performance.now();
for (let i = 0; i < steps; i++) stepOnce();
const wall = (performance.now() - t) / steps;
console.log(`prefill of ${context} positions: ${prefillMs.toFixed(0)} ms (first run, includes warm-up)`);
const again = llm.newCache();
await report(`prefill ${context} (again)`, () => tf.dispose(llm.forward(prompt, { cache: again, logits: 'last' })), NaN);
again.dispose();
await report(`decode step, ${beams} beam(s) at ${cache.length} positions`, stepOnce, wall);
cache.dispose();
prompt.dispose();
model.dispose();
