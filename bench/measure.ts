// One backend, one model, one process: load time and peak RSS, image encode,
// prefill tok/s (the original chat's 80-token prompt), greedy decode ms/token
// (KV cache). Prints one JSON object. Run by bench/run.ts, once per backend,
// so each backend's peak memory is its own.
//   tsx bench/measure.ts --model DIR --backend tensorflow [--reps 3] [--decode-tokens 32]
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../src/backend/index.ts';
import { greedy, newStats } from '../src/model/generate.ts';
import { loadModel } from '../src/model/load.ts';
import { expectedTensors } from '../src/config.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const dir = arg('model')!;
const reps = Number(arg('reps', '3'));
const decodeTokens = Number(arg('decode-tokens', '32'));
const gib = () => process.resourceUsage().maxRSS / 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const backend = await initBackend(arg('backend', 'tensorflow'));
let t0 = performance.now();
const model = loadModel(dir);
const loadMs = performance.now() - t0;
const loadPeakGiB = gib();
const S = model.cfg.vision.imageSize;
// A smooth synthetic image in [-1, 1] (pixel values after normalization).
const px = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i * 0.001) * 0.9);
// The original chat prompt for "What is in the image?" with the real tokenizer (SPEC section 6): 80 ids.
// Ids are clamped into the vocabulary so the same prompt shape runs on tiny models.
const V = model.cfg.llm.vocab, Q = model.cfg.resampler.numQueries;
const ids = [1, 95396, 4194, 95388, 101, ...new Array(Q).fill(0), 102, 5, 5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388].map((t) => t % V);

const encodeMs: number[] = [], prefillMs: number[] = [], decodeMsPerToken: number[] = [];
for (let r = 0; r < reps + 1; r++) {
  t0 = performance.now();
  const v = model.encodeImage(px);
  v.dataSync();
  const enc = performance.now() - t0;
  const E = model.buildInputsEmbeds(ids, [{ start: 5, end: 5 + Q }], [v]);
  const stats = newStats();
  greedy(model.llm, E, { maxNewTokens: decodeTokens + 1, eosId: -1, stats });
  tf.dispose([v, E]);
  if (r === 0) continue; // warm-up
  encodeMs.push(enc);
  prefillMs.push(stats.prefillMs);
  decodeMsPerToken.push(stats.decodeMs / stats.decodeSteps);
}
const params = model.weightBytes() / 4;
// Bytes of weights a decode step reads: every llm tensor but the embedding table (one row is gathered).
const decodeBytesPerToken = expectedTensors(model.cfg)
  .filter((t) => t.role === 'llm' && t.key !== 'llm.model.embed_tokens.weight')
  .reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
console.log(JSON.stringify({
  backend: backend.name, backendLine: describeBackend(backend), model: dir, params, decodeBytesPerToken,
  loadMs, loadPeakGiB, encodeMs: median(encodeMs), prefillTokens: ids.length, prefillMs: median(prefillMs),
  prefillTokPerS: (ids.length * 1000) / median(prefillMs), decodeMsPerToken: median(decodeMsPerToken),
  decodeTokPerS: 1000 / median(decodeMsPerToken), peakGiB: gib(), weightGiB: model.weightBytes() / 2 ** 30, reps,
  tfVersion: (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding?.TF_Version ?? null,
}));
model.dispose();
