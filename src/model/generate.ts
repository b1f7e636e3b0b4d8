// Decoding loops over the KV-cached decoder: greedy, beam search with the
// original chat() defaults, and sampling. Generation starts from prompt
// embeddings (the image rows are already merged), as the original passes
// `inputs_embeds` to `llm.generate`, so the returned ids are new tokens only
// and the repetition penalty sees only generated ids.
import * as tf from '../tfjs.ts';
import type { MiniCPMLlm } from './minicpm_llm.ts';
import { mulberry32 } from './rng.ts';
import { UserError } from '../errors.ts';

export class GenerationError extends UserError {}

export interface CommonOptions {
  maxNewTokens: number;
  eosId: number;
  /** Called with each new token id as it is chosen (greedy and sampling). */
  onToken?: (id: number) => void;
  /** Filled with wall times when given. */
  stats?: GenerationStats;
  /** Called after each step's choice with what it was chosen from (for `minicpmv inspect`). */
  onStep?: (s: StepReport) => void;
  /** When it reports aborted (an AbortSignal, say), generation stops after the current step and returns what it has. */
  signal?: { readonly aborted: boolean };
}

/**
 * A decoding run as a generator: it yields after every decoder step and returns the new ids. The plain
 * functions (`greedy`, `sample`, `beamSearch`) run it to the end; an async caller can run the event loop
 * between steps (so Ctrl-C, streaming to a socket or a UI keep working) with `runSteps`.
 */
export type DecodeSteps = Generator<void, number[], void>;

/** Runs a decoding run to its end. */
export function drain(steps: DecodeSteps): number[] {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs a decoding run, letting the event loop run between steps. */
export async function runSteps(steps: DecodeSteps): Promise<number[]> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A beam-search candidate of one step and what became of it. */
export interface BeamCandidate {
  beam: number;
  token: number;
  /** Cumulative log-probability (with the repetition penalty) if this token extends `beam`. */
  score: number;
  fate: 'continues' | 'finished' | 'dropped';
}

export type StepReport =
  /** Greedy and sampling: `scores` is the logits row the token was picked from (after any repetition penalty). */
  | { kind: 'token'; step: number; scores: Float32Array; id: number }
  /**
   * Beam search: the beams and their running scores before the step, the top 2·numBeams candidates in rank
   * order, and `parents` (new beam b extends old beam parents[b]); `done` when the search stops here.
   */
  | { kind: 'beam'; step: number; beams: number[][]; running: Float32Array; candidates: BeamCandidate[]; parents: number[];
    done: boolean };

export interface GenerationStats {
  prefillMs: number;
  prefillTokens: number;
  decodeMs: number;
  /** Decoder steps after the prefill (beam search runs all beams per step). */
  decodeSteps: number;
}

export function newStats(): GenerationStats {
  return { prefillMs: 0, prefillTokens: 0, decodeMs: 0, decodeSteps: 0 };
}

export interface BeamOptions extends CommonOptions {
  numBeams: number; // original default 3
  repetitionPenalty: number; // original default 1.2
  lengthPenalty?: number; // 1.0
}

export interface SampleOptions extends CommonOptions {
  temperature: number; // original default 0.6
  topK: number; // 100
  topP: number; // 0.8
  seed: number;
  repetitionPenalty?: number; // the original applies none when sampling
}

export interface GreedyOptions extends CommonOptions {
  repetitionPenalty?: number;
}

/** Most beams and new tokens accepted: each beam holds a KV cache, and a loop must end. */
export const MAX_BEAMS = 32;
export const MAX_NEW_TOKENS = 1 << 20;

/** The decoding options that have a valid range, under the names the original (HF) gives them. */
export interface DecodeRanges {
  maxNewTokens?: number;
  numBeams?: number;
  repetitionPenalty?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
}
const HF_NAMES: Record<keyof DecodeRanges, string> = {
  maxNewTokens: 'max_new_tokens', numBeams: 'num_beams', repetitionPenalty: 'repetition_penalty',
  temperature: 'temperature', topP: 'top_p', topK: 'top_k', seed: 'seed',
};
/** The sampler's PRNG (rng.ts mulberry32) takes a uint32 seed: larger seeds would repeat smaller ones. */
export const MAX_SEED = 2 ** 32 - 1;

/**
 * The one check of decoding options (the loops below call it; the CLI calls it before loading weights,
 * with its flag names). Absent options are not checked.
 */
export function checkDecodeOptions(o: DecodeRanges, name: (option: keyof DecodeRanges) => string = (k) => HF_NAMES[k]): void {
  const rule = (k: keyof DecodeRanges, ok: (v: number) => boolean, what: string) => {
    const v = o[k];
    if (v !== undefined && !ok(v)) throw new GenerationError(`${name(k)} must be ${what}, got ${v}`);
  };
  rule('maxNewTokens', (v) => Number.isInteger(v) && v > 0 && v <= MAX_NEW_TOKENS, `an integer in 1..${MAX_NEW_TOKENS}`);
  rule('numBeams', (v) => Number.isInteger(v) && v >= 1 && v <= MAX_BEAMS, `an integer in 1..${MAX_BEAMS}`);
  rule('repetitionPenalty', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  rule('temperature', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  rule('topP', (v) => v > 0 && v <= 1, 'in (0, 1]');
  rule('topK', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  rule('seed', (v) => Number.isInteger(v) && v >= 0 && v <= MAX_SEED, `an integer in 0..${MAX_SEED}`);
}

/** HF RepetitionPenaltyLogitsProcessor on one row, in place: each distinct seen id once. */
export function applyRepetitionPenalty(scores: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t];
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/** log_softmax of one fp32 row (max-shifted, as torch does). */
export function logSoftmax(row: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const out = new Float32Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The k largest entries (value desc, then index asc, as a stable torch.topk on CPU). */
export function topK(values: Float32Array, k: number): { index: number; value: number }[] {
  const top: { index: number; value: number }[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (top.length === k && v <= top[k - 1].value) continue;
    let at = top.length;
    while (at > 0 && top[at - 1].value < v) at--;
    top.splice(at, 0, { index: i, value: v });
    if (top.length > k) top.pop();
  }
  return top;
}

/**
 * Runs the prompt through the decoder with a fresh cache (room for `slots` sequences: the beams); returns
 * the cache and the last logits row.
 */
function prefill(llm: MiniCPMLlm, embeds: tf.Tensor3D, stats?: GenerationStats, slots = 1) {
  const cache = llm.newCache({ slots });
  try {
    const t0 = performance.now();
    const logits = llm.forward(embeds, { cache, logits: 'last' });
    const row = logits.dataSync() as Float32Array;
    logits.dispose();
    if (stats) {
      stats.prefillMs += performance.now() - t0;
      stats.prefillTokens += embeds.shape[1];
    }
    return { cache, row };
  } catch (e) {
    cache.dispose();
    throw e;
  }
}

function step(llm: MiniCPMLlm, ids: number[], cache: ReturnType<MiniCPMLlm['newCache']>, stats?: GenerationStats): Float32Array {
  const t0 = performance.now();
  const x = tf.tidy(() => llm.embed(ids).reshape([ids.length, 1, -1]) as tf.Tensor3D);
  const logits = llm.forward(x, { cache, logits: 'last' });
  x.dispose();
  const rows = logits.dataSync() as Float32Array;
  logits.dispose();
  if (stats) {
    stats.decodeMs += performance.now() - t0;
    stats.decodeSteps += 1;
  }
  return rows;
}

/**
 * One token per step from the last logits row (greedy and sampling share it):
 * optional repetition penalty, `pick`, stop on EOS, max_new_tokens or the signal.
 */
function* decodeLoop(llm: MiniCPMLlm, embeds: tf.Tensor3D, o: CommonOptions & { repetitionPenalty?: number },
  pick: (row: Float32Array) => number): DecodeSteps {
  const { cache, row: first } = prefill(llm, embeds, o.stats);
  const out: number[] = [];
  try {
    let row = first;
    for (;;) {
      if (o.repetitionPenalty && o.repetitionPenalty !== 1) applyRepetitionPenalty(row, out, o.repetitionPenalty);
      const id = pick(row);
      out.push(id);
      o.onToken?.(id);
      o.onStep?.({ kind: 'token', step: out.length, scores: row, id });
      if (id === o.eosId || out.length >= o.maxNewTokens) break;
      yield;
      if (o.signal?.aborted) break;
      row = step(llm, [id], cache, o.stats);
    }
    return out;
  } finally {
    cache.dispose();
  }
}

/** Greedy decoding: argmax at each step (optionally with a repetition penalty on the logits). */
export function greedySteps(llm: MiniCPMLlm, embeds: tf.Tensor3D, o: GreedyOptions): DecodeSteps {
  checkDecodeOptions(o);
  return decodeLoop(llm, embeds, o, argmax);
}

export const greedy = (llm: MiniCPMLlm, embeds: tf.Tensor3D, o: GreedyOptions): number[] => drain(greedySteps(llm, embeds, o));

/** HF warpers in order: temperature -> top-k -> top-p; then a seeded multinomial draw. */
export function sampleFromLogits(row: Float32Array, o: SampleOptions, rand: () => number): number {
  const V = row.length;
  const scores = new Float32Array(V);
  for (let i = 0; i < V; i++) scores[i] = row[i] / o.temperature;
  const removed = new Uint8Array(V);
  if (o.topK > 0 && o.topK < V) {
    const kth = topK(scores, o.topK)[o.topK - 1].value;
    for (let i = 0; i < V; i++) if (scores[i] < kth) removed[i] = 1;
  }
  // TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability is <= 1 - top_p
  // (always keeping the most likely one).
  const order = Array.from({ length: V }, (_, i) => i).filter((i) => !removed[i]).sort((a, b) => scores[a] - scores[b] || a - b);
  let max = -Infinity;
  for (const i of order) max = Math.max(max, scores[i]);
  const probs = new Float64Array(V);
  let total = 0;
  for (const i of order) total += probs[i] = Math.exp(scores[i] - max);
  if (o.topP < 1) {
    let cum = 0;
    for (let r = 0; r < order.length - 1; r++) {
      cum += probs[order[r]] / total;
      if (cum <= 1 - o.topP) removed[order[r]] = 1;
    }
  }
  let kept = 0;
  for (const i of order) if (!removed[i]) kept += probs[i];
  let u = rand() * kept;
  let last = order[order.length - 1];
  for (let r = order.length - 1; r >= 0; r--) {
    const i = order[r];
    if (removed[i]) continue;
    u -= probs[i];
    if (u <= 0) return i;
    last = i;
  }
  return last; // rounding left u > 0: the last kept token, as the reference's draw rule
}

/** Sampling (the original's `sampling=True`): reproducible for a given seed. */
export function sampleSteps(llm: MiniCPMLlm, embeds: tf.Tensor3D, o: SampleOptions): DecodeSteps {
  checkDecodeOptions(o);
  const rand = mulberry32(o.seed);
  return decodeLoop(llm, embeds, o, (row) => sampleFromLogits(row, o, rand));
}

export const sample = (llm: MiniCPMLlm, embeds: tf.Tensor3D, o: SampleOptions): number[] => drain(sampleSteps(llm, embeds, o));

interface Hypothesis {
  ids: number[];
  score: number;
}

/**
 * Beam search as transformers 4.36 runs it for chat() (do_sample False,
 * length_penalty 1, early_stopping False); SPEC section 6.1 step by step.
 * Stopped by the signal, it ends as at max_new_tokens: the running beams join the finished ones.
 */
export function beamSearchSteps(llm: MiniCPMLlm, embeds: tf.Tensor3D, o: BeamOptions): DecodeSteps {
  checkDecodeOptions(o);
  return beamLoop(llm, embeds, o);
}

export const beamSearch = (llm: MiniCPMLlm, embeds: tf.Tensor3D, o: BeamOptions): number[] => drain(beamSearchSteps(llm, embeds, o));

function* beamLoop(llm: MiniCPMLlm, embeds: tf.Tensor3D, o: BeamOptions): DecodeSteps {
  const nb = o.numBeams;
  const lp = o.lengthPenalty ?? 1;
  const { cache, row: first } = prefill(llm, embeds, o.stats, nb);
  const V = first.length;
  try {
    cache.expand(nb); // every beam continues the prompt's entries (stored once)
    let beams: number[][] = Array.from({ length: nb }, () => []);
    // Only beam 0 is live at the first step.
    let running = Float32Array.from({ length: nb }, (_, i) => (i === 0 ? 0 : -1e9));
    let rows: Float32Array[] = Array.from({ length: nb }, () => first);
    const finished: Hypothesis[] = [];
    const worst = () => Math.min(...finished.map((h) => h.score));
    const offer = (h: Hypothesis) => {
      if (finished.length < nb || h.score > worst()) {
        finished.push(h);
        if (finished.length > nb) finished.splice(finished.findIndex((x) => x.score === worst()), 1);
      }
    };
    for (let curLen = 1; ; curLen++) {
      const flat = new Float32Array(nb * V);
      for (let b = 0; b < nb; b++) {
        const s = logSoftmax(rows[b]);
        applyRepetitionPenalty(s, beams[b], o.repetitionPenalty);
        for (let t = 0; t < V; t++) flat[b * V + t] = Math.fround(s[t] + running[b]);
      }
      const cands = topK(flat, 2 * nb);
      const next: { beam: number; token: number; score: number }[] = [];
      const fates: BeamCandidate['fate'][] = cands.map(() => 'dropped');
      for (let rank = 0; rank < cands.length && next.length < nb; rank++) {
        const beam = Math.floor(cands[rank].index / V), token = cands[rank].index % V, score = cands[rank].value;
        if (token === o.eosId) {
          if (rank >= nb) continue;
          offer({ ids: beams[beam].slice(), score: score / curLen ** lp });
          fates[rank] = 'finished';
        } else {
          next.push({ beam, token, score });
          fates[rank] = 'continues';
        }
      }
      const done = finished.length >= nb && worst() >= cands[0].value / curLen ** lp;
      o.onStep?.({
        kind: 'beam', step: curLen, beams, running, parents: next.map((n) => n.beam), done: done || curLen >= o.maxNewTokens,
        candidates: cands.map((c, r) => ({ beam: Math.floor(c.index / V), token: c.index % V, score: c.value, fate: fates[r] })),
      });
      beams = next.map((n) => [...beams[n.beam], n.token]);
      running = Float32Array.from(next.map((n) => n.score));
      if (done) break;
      if (curLen < o.maxNewTokens) yield;
      if (curLen >= o.maxNewTokens || o.signal?.aborted) {
        beams.forEach((ids, b) => offer({ ids, score: running[b] / ids.length ** lp }));
        break;
      }
      cache.select(next.map((n) => n.beam));
      const out = step(llm, next.map((n) => n.token), cache, o.stats);
      rows = Array.from({ length: nb }, (_, b) => out.subarray(b * V, (b + 1) * V));
    }
    finished.sort((a, b) => b.score - a.score);
    return finished[0].ids;
  } finally {
    cache.dispose();
  }
}
