// What `minicpmv inspect` shows, computed in one run of the model (tiny or full size alike). Only what the
// page draws is kept, so memory stays bounded at full size:
//
//   pass 1  the prompt, every hook selected: per-hook statistics (mean, std, max |x|, NaN), the resampler's
//           attention probabilities `resampler.attn.weights` [1, heads, 64, patches], and with --compare each
//           hook compared with the dump as it is produced (nothing else is kept)
//   decode  greedy / beam search / sampling from pass 1's inputs_embeds, each step reported (generate.ts
//           onStep): the top-k candidates, and for beam search the beams, reorderings and finished hypotheses
//   pass 2  the logit lens: prompt + generated tokens through the decoder with a KV cache, 64 positions at a
//           time; each decoder layer's hidden state (and inputs_embeds) at the last prompt positions and at
//           every generated token goes through the model's own head (final RMSNorm, / logit divisor, lm_head;
//           all rows of a pass together, 256 at a time); only the top-5 (ids, probabilities) and the probability
//           of the token that actually came next are kept. At the last layer this is the model's own
//           distribution (test/inspect.test.ts).
//
// The prompt pass holds the prompt's logits [1, L, vocab] while it runs (the `logits` hook, as `trace`): 39 MB
// at full size for an 80-token prompt.
import * as tf from '../tfjs.ts';
import type { RgbImage } from '../image/types.ts';
import { preprocess } from '../image/preprocess.ts';
import { encodePng } from '../image/png_write.ts';
import { linear } from '../layers/linear.ts';
import type { Weight } from '../ops/packed_weight.ts';
import { rmsNorm } from '../layers/rms_norm.ts';
import { pillowResizeBicubic } from '../ops/pillow_resize.ts';
import { buildPrompt, encodePrompt, type ChatMessage, type DecodeOptions } from '../model/chat.ts';
import { beamSearch, greedy, logSoftmax, newStats, sample, topK, type StepReport } from '../model/generate.ts';
import { hookNames, Hooks } from '../model/hooks.ts';
import type { MiniCPMV } from '../model/minicpmv.ts';
import { tensorStats } from '../parity/trace.ts';
import type { MiniCPMTokenizer } from '../tokenizer/tokenizer.ts';
import type { DivergenceReport, DumpComparer } from './divergence.ts';

/** The decoding of an inspect run: chat()'s options (the repetition penalty as chat() applies it: 1.2 for beam search by default, none for greedy and sampling). */
export type InspectDecode = DecodeOptions;

export interface InspectOptions {
  msgs: ChatMessage[];
  image: RgbImage;
  decode: InspectDecode;
  /** How many of the last prompt positions the logit lens shows (default 8). */
  lensPositions?: number;
  /** Candidates listed per decoding step (default 5). */
  candidates?: number;
  compare?: DumpComparer;
  /** Told when each stage starts (for a progress line). */
  onStage?: (stage: string) => void;
  /** Free-form facts shown in the page header (model dir, image file, backend). */
  meta?: Record<string, string>;
}

export interface HookStat {
  key: string;
  shape: number[];
  mean: number;
  std: number;
  absMax: number;
  nan: number;
  inf: number;
}

/** One lens cell: the top-5 next tokens read from one layer at one position, and the actual next token's probability. */
export interface LensCell {
  ids: number[];
  probs: number[];
  /** Probability of the token that came next in the sequence (null at the end). */
  next: number | null;
}

export interface LensColumn {
  /** Position in the sequence (prompt positions first, then generated tokens). */
  pos: number;
  /** The input token at this position. */
  token: number;
  kind: 'prompt' | 'generated';
  /** The token that came next (what this position predicts), or null after the last one. */
  nextToken: number | null;
}

export type DecodeStep =
  | { kind: 'token'; step: number; id: number; candidates: { id: number; prob: number; logit: number }[] }
  | {
    kind: 'beam'; step: number; parents: number[]; done: boolean;
    candidates: { beam: number; token: number; score: number; logprob: number; fate: 'continues' | 'finished' | 'dropped' }[];
  };

export interface InspectData {
  format: 'minicpmv-inspect';
  version: 1;
  meta: Record<string, string>;
  config: {
    visionBlocks: number; layers: number; hidden: number; vocab: number; queries: number; heads: number;
    patchGrid: number; imageSize: number; bosId: number; eosId: number;
  };
  prompt: { ids: number[]; imageStart: number | null; imageEnd: number | null; text: string };
  msgs: ChatMessage[];
  decode: InspectDecode;
  answer: string;
  /** Generated ids, as the decoder returned them. */
  tokens: number[];
  /** Text of every token id the page names (decoded alone; the SentencePiece piece where that is not text). */
  vocab: Record<number, string>;
  image: { size: number; pngBase64: string };
  attention: { heads: number; queries: number; grid: number; keys: number; f32Base64: string };
  /** Every hook key of the prompt pass, in execution order. */
  hooks: string[];
  stats: HookStat[];
  lens: { rows: string[]; columns: LensColumn[]; cells: LensCell[][] };
  steps: DecodeStep[];
  divergence: DivergenceReport | null;
  timings: Record<string, number>;
}

const LENS_TOP = 5;
/** Positions per lens forward pass (bounds the attention scores and the hidden rows kept). */
const LENS_POSITIONS = 64;
/**
 * Rows per lm_head product in the lens. All layers' rows of a pass go through the head together, in blocks
 * this size: at full size a [256, 122753] block is ~4x cheaper per row than the 8-row decode product and
 * holds 126 MB of logits at a time.
 */
const LENS_BLOCK = 256;

/** The model's head as the lens applies it: final RMSNorm, / logit divisor, lm_head. */
export interface LensHead {
  normWeight: tf.Tensor1D;
  /** lm_head.weight [V, D], float32 or packed 16-bit (linear() takes either). */
  lmHead: Weight;
  eps: number;
  logitDivisor: number;
}

export function lensHead(model: MiniCPMV): LensHead {
  return {
    normWeight: model.params.get<tf.Tensor1D>('llm.model.norm.weight'), lmHead: model.params.weight('llm.lm_head.weight'),
    eps: model.cfg.llm.rmsEps, logitDivisor: model.cfg.llm.logitDivisor,
  };
}

/** A token's text for display: decoded alone, or its piece where that is not text (a byte of a UTF-8 sequence). */
export function tokenText(tok: MiniCPMTokenizer, id: number): string {
  const s = tok.decode([id]);
  return s === '' || s.includes('\uFFFD') ? tok.idToPiece(id) : s;
}

/**
 * The model's head on hidden states h [R, D]: top-5 (ids, probabilities) per row and the probability of
 * `next[r]` (or null for -1). The same ops as MiniCPMLlm.forward's logits: RMSNorm, / logitDivisor, lm_head.
 */
export function lensRows(head: LensHead, h: tf.Tensor2D, next: number[]): LensCell[] {
  const out: LensCell[] = [];
  const R = h.shape[0];
  for (let r0 = 0; r0 < R; r0 += LENS_BLOCK) {
    const n = Math.min(LENS_BLOCK, R - r0);
    const [ids, probs, nextP] = tf.tidy(() => {
      const rows = n === R ? h : h.slice([r0, 0], [n, h.shape[1]]);
      const logits = linear(tf.div(rmsNorm(rows, head.normWeight, head.eps), head.logitDivisor), head.lmHead) as tf.Tensor2D; // [n, V]
      const lse = tf.logSumExp(logits, 1, true);
      const { values, indices } = tf.topk(logits, LENS_TOP);
      const at = next.slice(r0, r0 + n).map((t, i) => [i, Math.max(t, 0)]);
      const nextLogit = tf.gatherND(logits, tf.tensor2d(at, [n, 2], 'int32'));
      return [indices.dataSync(), tf.exp(tf.sub(values, lse)).dataSync(), tf.exp(tf.sub(nextLogit, lse.reshape([n]))).dataSync()];
    });
    for (let i = 0; i < n; i++) {
      out.push({
        ids: Array.from(ids.subarray(i * LENS_TOP, (i + 1) * LENS_TOP)),
        probs: Array.from(probs.subarray(i * LENS_TOP, (i + 1) * LENS_TOP)),
        next: next[r0 + i] >= 0 ? nextP[i] : null,
      });
    }
  }
  return out;
}

function base64(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

function summarizeStep(s: StepReport, k: number): DecodeStep {
  if (s.kind === 'token') {
    const lp = logSoftmax(s.scores);
    return { kind: 'token', step: s.step, id: s.id,
      candidates: topK(s.scores, k).map((c) => ({ id: c.index, logit: c.value, prob: Math.exp(lp[c.index]) })) };
  }
  return {
    kind: 'beam', step: s.step, parents: s.parents, done: s.done,
    candidates: s.candidates.map((c) => ({ ...c, logprob: c.score - s.running[c.beam] })),
  };
}

/** Runs the model once and gathers everything the page shows. Leaves no tensor behind. */
export function collectInspection(model: MiniCPMV, tok: MiniCPMTokenizer, o: InspectOptions): InspectData {
  const cfg = model.cfg;
  const timings: Record<string, number> = {};
  const vocab = new Set<number>();
  const k = o.candidates ?? 5;
  const prompt = encodePrompt(tok, buildPrompt(o.msgs, cfg.resampler.numQueries));
  const L = prompt.ids.length;
  const pixels = preprocess(o.image, cfg.vision.imageSize);

  // Pass 1: the prompt with every hook point.
  o.onStage?.('prompt pass (vision, resampler, decoder; statistics of every hook)');
  const stats: HookStat[] = [], order: string[] = [];
  let attention: { data: Float32Array; shape: number[] } | undefined;
  const hooks = new Hooks({
    select: () => true,
    onActivation: (key, t) => {
      const data = t.dataSync() as Float32Array | Int32Array;
      order.push(key);
      if (t.dtype === 'float32') stats.push({ key, shape: [...t.shape], ...pickStats(tensorStats(data)) });
      if (key === 'resampler.attn.weights') attention = { data: Float32Array.from(data), shape: [...t.shape] };
      o.compare?.compare(key, data, t.shape);
    },
  });
  let t0 = performance.now();
  const embeds = tf.tidy(() => {
    const e = model.promptEmbeds({ pixelValues: pixels, inputIds: prompt.ids, imageBounds: prompt.bounds }, hooks);
    model.llm.forward(e, { hooks, logits: 'all' });
    return e;
  });
  timings.promptPassMs = performance.now() - t0;
  try {
    if (!attention) throw new Error('resampler.attn.weights was not emitted (a prompt without an image?)');

    // Decoding, each step reported.
    o.onStage?.(`decoding (${o.decode.mode}, up to ${o.decode.maxNewTokens} tokens)`);
    const steps: DecodeStep[] = [];
    const d = o.decode, gstats = newStats();
    const common = { maxNewTokens: d.maxNewTokens, eosId: tok.eosId, stats: gstats, onStep: (s: StepReport) => steps.push(summarizeStep(s, k)) };
    t0 = performance.now();
    const tokens = d.mode === 'beam'
      ? beamSearch(model.llm, embeds, { ...common, numBeams: d.numBeams, repetitionPenalty: d.repetitionPenalty })
      : d.mode === 'greedy'
        ? greedy(model.llm, embeds, { ...common, repetitionPenalty: d.repetitionPenalty })
        : sample(model.llm, embeds, { ...common, temperature: d.temperature, topK: d.topK, topP: d.topP, seed: d.seed,
          repetitionPenalty: d.repetitionPenalty });
    timings.decodeMs = performance.now() - t0;
    timings.decodeSteps = gstats.decodeSteps;

    // Pass 2: the logit lens over the last prompt positions and every generated token.
    o.onStage?.('logit lens (each layer through the final norm and lm_head)');
    t0 = performance.now();
    const lens = logitLens(model, embeds, prompt.ids, tokens, Math.max(1, Math.min(o.lensPositions ?? 8, L)));
    timings.lensMs = performance.now() - t0;

    for (const c of lens.columns) { vocab.add(c.token); if (c.nextToken !== null) vocab.add(c.nextToken); }
    for (const row of lens.cells) for (const cell of row) cell.ids.forEach((id) => vocab.add(id));
    for (const s of steps) for (const c of s.candidates) vocab.add('id' in c ? c.id : c.token);
    tokens.forEach((t) => vocab.add(t));

    const S = cfg.vision.imageSize, grid = Math.floor(S / cfg.vision.patchSize);
    const [, heads, queries, keys] = attention.shape;
    const answerIds = tokens.filter((t) => t !== 0 && t !== tok.eosId);
    return {
      format: 'minicpmv-inspect', version: 1,
      meta: o.meta ?? {},
      config: {
        visionBlocks: cfg.vision.blocksRun, layers: cfg.llm.numLayers, hidden: cfg.llm.hidden, vocab: cfg.llm.vocab,
        queries: cfg.resampler.numQueries, heads: cfg.resampler.numHeads, patchGrid: grid, imageSize: S,
        bosId: tok.bosId, eosId: tok.eosId,
      },
      prompt: {
        ids: prompt.ids, imageStart: prompt.bounds[0]?.start ?? null, imageEnd: prompt.bounds[0]?.end ?? null,
        text: buildPrompt(o.msgs, cfg.resampler.numQueries),
      },
      msgs: o.msgs,
      decode: o.decode,
      answer: tok.decode(answerIds).trim(),
      tokens,
      vocab: Object.fromEntries([...vocab].sort((a, b) => a - b).map((id) => [id, tokenText(tok, id)])),
      image: { size: S, pngBase64: encodePng(pillowResizeBicubic(o.image, S, S)).toString('base64') },
      attention: { heads, queries, grid, keys, f32Base64: base64(attention.data) },
      hooks: order,
      stats,
      lens,
      steps,
      divergence: o.compare?.report() ?? null,
      timings,
    };
  } finally {
    embeds.dispose();
  }
}

function pickStats(s: ReturnType<typeof tensorStats>): Omit<HookStat, 'key' | 'shape'> {
  return { mean: s.mean, std: s.std, absMax: s.absMax, nan: s.nan, inf: s.inf };
}

/**
 * Pass 2 (see the file comment). Rows: inputs_embeds, then each decoder layer's output. Each forward pass
 * keeps the wanted positions of every row's hidden state, then all go through the head together.
 */
function logitLens(model: MiniCPMV, embeds: tf.Tensor3D, ids: number[], generated: number[], P: number): InspectData['lens'] {
  const nl = model.cfg.llm.numLayers, L = ids.length, D = model.cfg.llm.hidden;
  const head = lensHead(model);
  const rowKeys = ['inputs_embeds', ...Array.from({ length: nl }, (_, i) => `llm.model.layers.${i}`)];
  const rowOf = new Map(rowKeys.map((key, i) => [key, i]));
  const seq = [...ids, ...generated];
  const columns: LensColumn[] = [];
  for (let p = L - P; p < seq.length; p++) {
    columns.push({ pos: p, token: seq[p], kind: p < L ? 'prompt' : 'generated', nextToken: p + 1 < seq.length ? seq[p + 1] : null });
  }
  const cells: LensCell[][] = rowKeys.map(() => []);
  const kept: (tf.Tensor2D | null)[] = rowKeys.map(() => null);
  let from = 0;
  const hooks = new Hooks({
    select: (key) => rowOf.has(key),
    onActivation: (key, t) => {
      const T = t.shape[1]!;
      kept[rowOf.get(key)!] = tf.keep(tf.tidy(() => t.reshape([T, D]).slice([from, 0], [T - from, D]) as tf.Tensor2D));
    },
  });
  /** One forward pass over positions [first, first + n): their lens cells appended to every row. */
  const pass = (first: number, n: number, run: () => void) => {
    try {
      run();
      const all = tf.concat(kept as tf.Tensor2D[], 0) as tf.Tensor2D; // [rows * n, D]
      const next = rowKeys.flatMap(() => Array.from({ length: n }, (_, i) => (first + i + 1 < seq.length ? seq[first + i + 1] : -1)));
      let got: LensCell[];
      try {
        got = lensRows(head, all, next);
      } finally {
        all.dispose();
      }
      rowKeys.forEach((_, r) => cells[r].push(...got.slice(r * n, (r + 1) * n)));
    } finally {
      tf.dispose(kept.filter((t): t is tf.Tensor2D => t !== null));
      kept.fill(null);
    }
  };
  const cache = model.llm.newCache();
  try {
    from = L - P;
    pass(L - P, P, () => tf.dispose(model.llm.forward(embeds, { cache, hooks, logits: 'none' })));
    for (let c = 0; c < generated.length; c += LENS_POSITIONS) {
      const chunk = generated.slice(c, c + LENS_POSITIONS);
      from = 0;
      pass(L + c, chunk.length, () => tf.tidy(() => { model.llm.forward(model.llm.embed(chunk), { cache, hooks, logits: 'none' }); }));
    }
  } finally {
    cache.dispose();
  }
  return { rows: rowKeys, columns, cells };
}
