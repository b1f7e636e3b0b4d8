// The chat template, prompt encoding and output clean-up of the original
// `MiniCPMV.chat` / `_process_list` / `_convert_to_tensors` / `_decode_text`
// (modeling_minicpmv.py, TobyYang7/Vision MiniCPM-V/), and a session that
// keeps the encoded image across turns.
import * as tf from '../tfjs.ts';
import type { RgbImage } from '../image/types.ts';
import { preprocess } from '../image/preprocess.ts';
import type { MiniCPMTokenizer } from '../tokenizer/tokenizer.ts';
import { beamSearch, greedy, newStats, sample, type GenerationStats } from './generate.ts';
import type { ImageBound, MiniCPMV } from './minicpmv.ts';
import { UserError } from '../errors.ts';

export class PromptError extends UserError {}

export type Role = 'user' | 'assistant';
export interface ChatMessage {
  role: Role;
  content: string;
}

/** chat() truncates the encoded prompt to this many ids, keeping the head. */
export const MAX_INPUT_LENGTH = 2048;

/** Strings the tokenizer maps to single special ids; typed by a user they would forge image slots. */
const RESERVED = ['<image>', '</image>', '<unk>', '<s>', '</s>', '<ref>', '</ref>', '<box>', '</box>', '<quad>', '</quad>'];

export type DecodeMode = 'beam' | 'greedy' | 'sample';

export interface DecodeOptions {
  mode: DecodeMode;
  maxNewTokens: number;
  numBeams: number;
  repetitionPenalty: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/**
 * The original chat() defaults: beam search (3 beams, repetition penalty 1.2)
 * unless sampling, which uses top_p 0.8, top_k 100, temperature 0.6 and no
 * repetition penalty. max_new_tokens 2048.
 */
export const ORIGINAL_DEFAULTS: DecodeOptions = {
  mode: 'beam', maxNewTokens: 2048, numBeams: 3, repetitionPenalty: 1.2, temperature: 0.6, topK: 100, topP: 0.8, seed: 0,
};

function checkMessages(msgs: unknown): asserts msgs is ChatMessage[] {
  if (!Array.isArray(msgs) || msgs.length === 0) throw new PromptError('msgs must be a non-empty list of {role, content}');
  msgs.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new PromptError(`message ${i} is not an object with role and content`);
    const { role, content } = m as Record<string, unknown>;
    if (role !== 'user' && role !== 'assistant') throw new PromptError(`message ${i}: role must be "user" or "assistant", got ${JSON.stringify(role)}`);
    if (typeof content !== 'string') throw new PromptError(`message ${i}: content must be a string`);
    if (role === 'user' && content.trim() === '') throw new PromptError(`message ${i}: the user's text is empty`);
    // Decided: refuse rather than escape, in the user's text. Escaping would change what the original model
    // sees for the same text. Assistant turns are the model's own answers, re-encoded as the original does.
    const bad = role === 'user' ? RESERVED.find((s) => content.includes(s)) : undefined;
    if (bad) throw new PromptError(`message ${i} contains the reserved token string "${bad}"; remove it (the image slots are added by the template)`);
  });
  if (msgs[0].role !== 'user') throw new PromptError('the first message must be from the user (it carries the image)');
}

/**
 * `<用户>` / `<AI>` turns with no separators; the image placeholder
 * (`<image>` + `<unk>` x query_num + `</image>` + newline) goes at the start of
 * the first message only; the prompt ends with `<AI>`.
 */
export function buildPrompt(msgs: ChatMessage[], queryNum: number, withImage = true): string {
  checkMessages(msgs);
  let prompt = '';
  msgs.forEach((m, i) => {
    let c = m.content;
    if (i === 0 && withImage) c = `<image>${'<unk>'.repeat(queryNum)}</image>\n${c}`;
    prompt += (m.role === 'user' ? '<用户>' : '<AI>') + c;
  });
  return `${prompt}<AI>`;
}

export interface EncodedPrompt {
  ids: number[];
  bounds: ImageBound[];
  /** Ids before truncation to MAX_INPUT_LENGTH. */
  fullLength: number;
  truncated: boolean;
}

/** `_convert_to_tensors`: encode (BOS added), keep the first 2048 ids, pair `<image>`/`</image>` positions. */
export function encodePrompt(tok: MiniCPMTokenizer, prompt: string, maxInputLength = MAX_INPUT_LENGTH): EncodedPrompt {
  const all = tok.encode(prompt);
  const ids = all.slice(0, maxInputLength);
  const start = tok.pieceToId('<image>'), end = tok.pieceToId('</image>');
  const starts = ids.flatMap((t, i) => (t === start ? [i + 1] : []));
  const ends = ids.flatMap((t, i) => (t === end ? [i] : []));
  const n = Math.min(starts.length, ends.length);
  const bounds = Array.from({ length: n }, (_, i) => ({ start: starts[i], end: ends[i] }));
  return { ids, bounds, fullLength: all.length, truncated: all.length > ids.length };
}

/** `_decode_text`: drop every 0, a leading BOS and a trailing EOS, decode, strip. */
export function cleanOutput(tok: MiniCPMTokenizer, ids: number[]): string {
  let r = ids.filter((t) => t !== 0);
  if (r[0] === tok.bosId) r = r.slice(1);
  if (r.length && r[r.length - 1] === tok.eosId) r = r.slice(0, -1);
  return tok.decode(r).trim();
}

export interface ChatTimings {
  imageEncodeMs: number;
  prefillMs: number;
  prefillTokens: number;
  prefillTokPerS: number;
  decodeMs: number;
  decodeSteps: number;
  decodeTokPerS: number;
}

export interface ChatReply {
  answer: string;
  /** Generated ids before clean-up. */
  tokens: number[];
  /** The conversation with this answer appended (as the original appends to msgs). */
  context: ChatMessage[];
  prompt: EncodedPrompt;
  timings: ChatTimings;
  /** Things the caller should know about this answer (e.g. positions past the trained context). */
  warnings: string[];
}

export interface AskOptions extends Partial<DecodeOptions> {
  /** Streams the answer text as tokens arrive (greedy and sampling). */
  onText?: (delta: string) => void;
  onToken?: (id: number) => void;
  /** Beam search's progress: the step and the best running beam's ids (generate.ts BeamOptions.onStep). */
  onBeamStep?: (step: number, bestIds: readonly number[]) => void;
}

/**
 * One image, many turns: the image is preprocessed and encoded once, the
 * history grows with each answer.
 */
export class ChatSession {
  private vision: tf.Tensor3D | null = null;
  private imageEncodeMs = 0;
  readonly history: ChatMessage[] = [];

  constructor(readonly model: MiniCPMV, readonly tokenizer: MiniCPMTokenizer, private readonly image: RgbImage | Float32Array) {}

  /** Encodes the image on first use; later turns reuse it. */
  private encoded(): tf.Tensor3D {
    if (!this.vision) {
      const t0 = performance.now();
      const pixels = this.image instanceof Float32Array ? this.image : preprocess(this.image, this.model.cfg.vision.imageSize);
      this.vision = this.model.encodeImage(pixels);
      this.vision.dataSync();
      this.imageEncodeMs = performance.now() - t0;
    }
    return this.vision;
  }

  /** Asks the next user question (history so far plus this one). */
  ask(question: string, opts: AskOptions = {}): ChatReply {
    return this.reply([...this.history, { role: 'user', content: question }], opts, true);
  }

  /** Answers a whole conversation (its last message should be the user's); history becomes that conversation. */
  reply(msgs: ChatMessage[], opts: AskOptions = {}, keepHistory = true): ChatReply {
    const o = { ...ORIGINAL_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as DecodeOptions & AskOptions;
    const firstEncode = this.vision === null;
    const prompt = encodePrompt(this.tokenizer, buildPrompt(msgs, this.model.cfg.resampler.numQueries));
    const vision = this.encoded();
    const stats: GenerationStats = newStats();
    const embeds = this.model.buildInputsEmbeds(prompt.ids, prompt.bounds, prompt.bounds.map(() => vision));
    const streamer = o.onText ? new TextStreamer(this.tokenizer, o.onText) : undefined;
    const onToken = (id: number) => { o.onToken?.(id); streamer?.push(id); };
    const common = { maxNewTokens: o.maxNewTokens, eosId: this.tokenizer.eosId, stats, onToken };
    let tokens: number[];
    try {
      tokens = o.mode === 'beam'
        ? beamSearch(this.model.llm, embeds, { ...common, numBeams: o.numBeams, repetitionPenalty: o.repetitionPenalty, onStep: o.onBeamStep })
        : o.mode === 'greedy'
          ? greedy(this.model.llm, embeds, { ...common, repetitionPenalty: opts.repetitionPenalty ?? 1 })
          : sample(this.model.llm, embeds, { ...common, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
            repetitionPenalty: opts.repetitionPenalty ?? 1 });
    } finally {
      embeds.dispose();
    }
    const answer = cleanOutput(this.tokenizer, tokens);
    const warnings: string[] = [];
    const positions = prompt.ids.length + tokens.length, trained = this.model.cfg.llm.maxPositions;
    if (positions > trained) {
      warnings.push(`the conversation reached ${positions} positions, past max_position_embeddings ${trained}: the rotary ` +
        'table extends as the original rebuilds it, but the model was not trained that far');
    }
    const context = [...msgs, { role: 'assistant' as const, content: answer }];
    if (keepHistory) this.history.splice(0, this.history.length, ...context);
    const rate = (n: number, ms: number) => (ms > 0 ? (n * 1000) / ms : 0);
    return {
      answer, tokens, context, prompt, warnings,
      timings: {
        imageEncodeMs: firstEncode ? this.imageEncodeMs : 0,
        prefillMs: stats.prefillMs, prefillTokens: stats.prefillTokens, prefillTokPerS: rate(stats.prefillTokens, stats.prefillMs),
        decodeMs: stats.decodeMs, decodeSteps: stats.decodeSteps, decodeTokPerS: rate(stats.decodeSteps, stats.decodeMs),
      },
    };
  }

  dispose(): void {
    this.vision?.dispose();
    this.vision = null;
  }
}

/**
 * Turns a stream of ids into text deltas: decodes the ids so far and emits the
 * new suffix, holding back an incomplete UTF-8 sequence (a trailing U+FFFD).
 */
export class TextStreamer {
  private ids: number[] = [];
  private sent = '';
  constructor(private readonly tok: MiniCPMTokenizer, private readonly emit: (delta: string) => void) {}

  push(id: number): void {
    if (id === this.tok.eosId || id === 0) return;
    this.ids.push(id);
    const text = this.tok.decode(this.ids);
    if (text.endsWith('\uFFFD')) return;
    if (text.startsWith(this.sent) && text.length > this.sent.length) {
      this.emit(text.slice(this.sent.length));
      this.sent = text;
    }
  }
}

/**
 * The original `chat(image, msgs, tokenizer, ...)`: one call, one answer.
 * `context` is msgs with the answer appended.
 */
export function chat(args: { model: MiniCPMV; tokenizer: MiniCPMTokenizer; image: RgbImage | Float32Array; msgs: ChatMessage[] } & AskOptions): ChatReply {
  const { model, tokenizer, image, msgs, ...opts } = args;
  const session = new ChatSession(model, tokenizer, image);
  try {
    return session.reply(msgs, opts, false);
  } finally {
    session.dispose();
  }
}
