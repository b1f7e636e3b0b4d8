// One implementation setting, one model, one process: the phases of reference/bench.py with the same keys,
// plus a raw read of the checkpoint files just before the load (the same bytes, no model: the load's
// floor) and the resident weights. Prints one JSON object. Run by bench/run.ts, once per setting, so each
// peak memory is its own.
//   tsx bench/measure.ts --model DIR [--backend tensorflow] [--weights-dtype auto|f32] [--reps 2] [--steps 8]
//                        [--long 1000] [--longest 2000]
// Phases (each timed after a warm-up; medians): load; image encode (448x448); prefill of the 80-token chat
// prompt (the last position's logits); greedy steps and beam-3 steps after an 80- and a `long`-position
// prefill (a beam step runs 3 rows and reorders the beams, as beam search does); greedy decode after 100
// and `longest` positions, their steps alternating; the slowest of the greedy steps that write positions
// 254..259 (a cache that grows every 128 positions copies itself at 256); peak RSS after each part; then,
// after the whole run's peak, beam-3 over greedy step time with their steps alternating (two caches).
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../src/backend/index.ts';
import { expectedTensors } from '../src/config.ts';
import type { KVCache } from '../src/model/minicpm_llm.ts';
import { loadModel } from '../src/model/load.ts';
import type { WeightsDtypeOption } from '../src/model/minicpmv.ts';
import { openCheckpoint } from '../src/weights/checkpoint.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const dir = arg('model')!;
const reps = Number(arg('reps', '2')), steps = Number(arg('steps', '8'));
const long = Number(arg('long', '1000')), longest = Number(arg('longest', '2000'));
const weightsDtype = arg('weights-dtype', 'auto') as WeightsDtypeOption;
const gib = () => process.resourceUsage().maxRSS / 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Reads every checkpoint file once into one reused buffer: what the load cannot beat. */
function rawRead(): { ms: number; bytes: number } {
  const ckpt = openCheckpoint(dir);
  const files = ckpt.files.map((f) => f.path);
  ckpt.close();
  const buf = Buffer.allocUnsafe(64 << 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    for (let got; (got = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) bytes += got;
    fs.closeSync(fd);
  }
  return { ms: performance.now() - t0, bytes };
}

const backend = await initBackend(arg('backend', 'tensorflow'));
const raw = rawRead();
let t0 = performance.now();
const model = loadModel(dir, { weightsDtype });
const loadMs = performance.now() - t0;
const out: Record<string, unknown> = {
  backend: backend.name, backendLine: describeBackend(backend), model: path.basename(dir), weightsDtype,
  rawReadMs: raw.ms, checkpointBytes: raw.bytes, loadMs, loadPeakGiB: gib(), weights: model.residentWeights(),
};
const S = model.cfg.vision.imageSize;
// A smooth synthetic image in [-1, 1] (pixel values after normalization).
const px = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i * 0.001) * 0.9);
// The original chat prompt for "What is in the image?" with the real tokenizer (SPEC section 6): 80 ids.
// Ids are clamped into the vocabulary so the same prompt shape runs on tiny models.
const llm = model.llm, V = model.cfg.llm.vocab, Q = model.cfg.resampler.numQueries;
const ids = [1, 95396, 4194, 95388, 101, ...new Array(Q).fill(0), 102, 5, 5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388].map((t) => t % V);

const argmaxRows = (logits: tf.Tensor): number[] => tf.tidy(() => Array.from(logits.reshape([logits.shape[0], -1]).argMax(-1).dataSync()));
function prefill(embeds: tf.Tensor3D, cache: KVCache): { tok: number; ms: number } {
  const t = performance.now();
  const y = llm.forward(embeds, { cache, logits: 'last' });
  const tok = argmaxRows(y)[0];
  y.dispose();
  return { tok, ms: performance.now() - t };
}
function greedySteps(cache: KVCache, tok: number, n: number): { tok: number; ms: number[] } {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const x = llm.embed([tok]);
    const y = llm.forward(x, { cache, logits: 'last' });
    tok = argmaxRows(y)[0];
    tf.dispose([x, y]);
    ms.push(performance.now() - t);
  }
  return { tok, ms };
}
/** Beam steps on 3 sequences (the cache already expanded to them): `toks` are their last tokens. */
function beamSteps(cache: KVCache, toks: number[], n: number): { toks: number[]; ms: number[] } {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const x = tf.tidy(() => llm.embed(toks).reshape([3, 1, -1]) as tf.Tensor3D);
    const y = llm.forward(x, { cache, logits: 'last' });
    toks = argmaxRows(y);
    tf.dispose([x, y]);
    cache.select([0, 0, 1]); // one beam dropped, one forked
    ms.push(performance.now() - t);
  }
  return { toks, ms };
}
const threeBeams = (tok: number) => [tok, tok + 1, tok + 2].map((t) => t % V);
const randomPrompt = (n: number) => llm.embed(Array.from({ length: n }, (_, i) => ((i + n) * 7919) % V));

const enc: number[] = [], pre: number[] = [];
let E: tf.Tensor3D | undefined;
for (let r = 0; r < reps + 1; r++) {
  t0 = performance.now();
  const v = model.encodeImage(px);
  v.dataSync();
  const e = performance.now() - t0;
  E?.dispose();
  E = model.buildInputsEmbeds(ids, [{ start: 5, end: 5 + Q }], [v]);
  v.dispose();
  const c = llm.newCache();
  const p = prefill(E, c);
  c.dispose();
  if (r === 0) continue; // warm-up
  enc.push(e);
  pre.push(p.ms);
}
Object.assign(out, { encodeMs: median(enc), prefillTokens: ids.length, prefillMs: median(pre), prefillTokPerS: (ids.length * 1000) / median(pre) });
for (const [ctx, key] of [[ids.length, 'short'], [long, 'long']] as const) {
  const cache = llm.newCache({ slots: 3 });
  const prompt = ctx === ids.length ? E! : randomPrompt(ctx);
  let { tok } = prefill(prompt, cache);
  if (prompt !== E) prompt.dispose();
  const g = greedySteps(cache, tok, steps + 2);
  tok = g.tok;
  cache.expand(3);
  const b = beamSteps(cache, threeBeams(tok), steps + 2).ms;
  Object.assign(out, { [`greedyStepMs_${key}`]: median(g.ms.slice(2)), [`beam3StepMs_${key}`]: median(b.slice(2)),
    [`context_${key}`]: ctx, [`peakGiB_${key}`]: gib(), [`kvCacheGiB_${key}`]: cache.bytes() / 2 ** 30 });
  cache.dispose();
}
{
  // Greedy decode after 100 and after `longest` positions, one step of each in turn, so that both medians come
  // from the same minutes of this machine (its speed drifts by tens of percent over minutes).
  const ctxs = longest > 0 ? [100, longest] : [100];
  const caches = ctxs.map(() => llm.newCache());
  const toks = ctxs.map((ctx, i) => {
    const prompt = randomPrompt(ctx);
    const { tok } = prefill(prompt, caches[i]);
    prompt.dispose();
    return tok;
  });
  const ms: number[][] = ctxs.map(() => []);
  for (let s = 0; s < steps + 2; s++) {
    ctxs.forEach((_, i) => {
      const g = greedySteps(caches[i], toks[i], 1);
      toks[i] = g.tok;
      ms[i].push(g.ms[0]);
    });
  }
  out.decodeMs_100 = median(ms[0].slice(2));
  if (longest > 0) Object.assign(out, { decodeMs_longest: median(ms[1].slice(2)), longest });
  caches.forEach((c) => c.dispose());
}
{
  // Steps across position 256: a cache grown in chunks copies every layer's entries there.
  const cache = llm.newCache();
  const prompt = randomPrompt(252);
  const { tok } = prefill(prompt, cache);
  prompt.dispose();
  const ms = greedySteps(cache, tok, 8).ms.slice(2);
  Object.assign(out, { worstStepMs_256: Math.max(...ms), worstStepMedianMs_256: median(ms) });
  cache.dispose();
}
const wholeRunPeakGiB = gib();
{
  // Beam-3 against greedy steps in turn (two caches from the same prompt), for their ratio: the medians above
  // ran one after the other, minutes apart. After the whole run's peak is taken: the second cache adds memory
  // that PyTorch's run does not hold.
  for (const [ctx, key] of [[ids.length, 'short'], [long, 'long']] as const) {
    const greedy = llm.newCache(), beams = llm.newCache({ slots: 3 });
    const prompt = ctx === ids.length ? E! : randomPrompt(ctx);
    let tok = prefill(prompt, greedy).tok;
    let btoks = threeBeams(prefill(prompt, beams).tok);
    beams.expand(3);
    if (prompt !== E) prompt.dispose();
    const ratios: number[] = [];
    for (let s = 0; s < steps + 2; s++) {
      const g = greedySteps(greedy, tok, 1);
      tok = g.tok;
      const b = beamSteps(beams, btoks, 1);
      btoks = b.toks;
      if (s >= 2) ratios.push(b.ms[0] / g.ms[0]);
    }
    out[`beam3OverGreedyPaired_${key}`] = median(ratios);
    greedy.dispose();
    beams.dispose();
  }
}
E?.dispose();
// Bytes of weights a decode step reads: every llm tensor but the embedding table (one row is gathered), at
// the resident size (2 bytes per packed value).
const plan = model.params;
const decodeBytesPerToken = expectedTensors(model.cfg)
  .filter((t) => t.role === 'llm' && t.key !== 'llm.model.embed_tokens.weight')
  .reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * (plan.info(t.key).dtype === 'float32' ? 4 : 2), 0);
// Bytes of KV cache a decode step reads per position of context (keys and values of every layer, fp32).
const lc = model.cfg.llm, kvBytesPerPosition = lc.numLayers * 2 * lc.numKvHeads * lc.headDim * 4;
Object.assign(out, {
  decodeBytesPerToken, kvBytesPerPosition, peakGiB: wholeRunPeakGiB, reps, steps,
  decodeMsPerToken: out.greedyStepMs_short, decodeTokPerS: 1000 / (out.greedyStepMs_short as number),
  tfVersion: (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding?.TF_Version ?? null,
});
console.log(JSON.stringify(out));
model.dispose();
