// Where an image encode's time goes, per TF.js kernel (tf.profile), loading the vision tower only.
//   tsx bench/profile_encode.ts DIR
import * as tf from '../src/tfjs.ts';
import { initBackend } from '../src/backend/index.ts';
import { loadModel } from '../src/model/load.ts';

await initBackend('tensorflow');
const model = loadModel(process.argv[2], { parts: 'vision' });
const S = model.cfg.vision.imageSize;
const px = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i * 0.001) * 0.9);
tf.dispose(model.encodeImage(px));
let t = performance.now();
tf.dispose(model.encodeImage(px).dataSync());
console.log(`encode wall ${(performance.now() - t).toFixed(0)} ms`);
const info = await tf.profile(() => { model.encodeImage(px).dataSync(); });
const by = new Map<string, { ms: number; n: number }>();
for (const k of info.kernels) {
  const key = `${k.name} ${k.name.includes('MatMul') ? k.inputShapes.map((s) => `[${s}]`).join('x') : ''}`;
  const e = by.get(key) ?? { ms: 0, n: 0 };
  e.ms += (k as unknown as { kernelTimeMs: number }).kernelTimeMs; e.n++;
  by.set(key, e);
}
for (const [k, v] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 14)) console.log(`${v.ms.toFixed(0).padStart(7)} ms ${String(v.n).padStart(4)}x  ${k}`);
model.dispose();
