// Quick probe of the full-size model: load, one image encode, an 80-token prefill, a few decode steps.
// Usage: tsx bench/fullsize_probe.ts DIR [backend]
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.ts';
import { loadModel } from '../src/model/load.ts';
import { greedy, newStats } from '../src/model/generate.ts';

const dir = process.argv[2];
await initBackend(process.argv[3] ?? 'tensorflow');
let t = performance.now();
const model = loadModel(dir);
console.log(`load ${((performance.now() - t) / 1000).toFixed(1)} s, rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB, peak ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`);
const S = model.cfg.vision.imageSize;
const px = new Float32Array(3 * S * S).map((_, i) => Math.sin(i) * 0.9);
for (let r = 0; r < 2; r++) {
  t = performance.now();
  const v = model.encodeImage(px);
  v.dataSync();
  console.log(`encode ${((performance.now() - t) / 1000).toFixed(2)} s`);
  const ids = [1, 95396, 4194, 95388, 101, ...new Array(64).fill(0), 102, 5, 5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388];
  const E = model.buildInputsEmbeds(ids, [{ start: 5, end: 69 }], [v]);
  const stats = newStats();
  const out = greedy(model.llm, E, { maxNewTokens: 6, eosId: -1, stats });
  console.log(`prefill ${stats.prefillTokens} tok ${stats.prefillMs.toFixed(0)} ms (${(stats.prefillTokens * 1000 / stats.prefillMs).toFixed(1)} tok/s), decode ${(stats.decodeMs / stats.decodeSteps).toFixed(0)} ms/token, ids ${out}`);
  tf.dispose([v, E]);
}
console.log(`peak rss ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB, tensors ${tf.memory().numTensors}`);
model.dispose();
