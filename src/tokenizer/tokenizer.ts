// The MiniCPM-V v1 tokenizer: `LlamaTokenizerWrapper` (TobyYang7/Vision MiniCPM-V/modeling_minicpmv.py), i.e. the slow
// HF `LlamaTokenizer` with legacy=True, add_bos_token=True, add_eos_token=False, as transformers 4.36.0 runs it:
//   encode: tokenization_utils.py `tokenize` splits the text on the added (special) tokens, each remaining chunk goes
//           to `sp_model.encode` unchanged (legacy), then `[bos] + ids`.
//   decode: tokenization_utils.py `_decode` -> llama/tokenization_llama.py `convert_tokens_to_string` (see decode()).
import { SentencePieceBpe } from './bpe.ts';
import { TokenizerError } from './errors.ts';
import { parseSentencePieceModel, TRAINER_DEFAULTS, type SentencePieceModel } from './sentencepiece_model.ts';

export { TokenizerError } from './errors.ts';

/** Additional special tokens of LlamaTokenizerWrapper (tokenizer_config.json `additional_special_tokens`). */
export const WRAPPER_SPECIAL_TOKENS = ['<image>', '</image>', '<ref>', '</ref>', '<box>', '</box>', '<quad>', '</quad>'];

export interface TokenizerOptions {
  /** Strings split out before SentencePiece. Default: the model's unk/bos/eos pieces + WRAPPER_SPECIAL_TOKENS. */
  specialTokens?: string[];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export class MiniCPMTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly specialTokens: string[];
  private readonly specialIds = new Map<string, number>();
  /** Alternation of the special tokens, longest first: the HF trie split takes the leftmost, then longest. */
  private readonly specialRe: RegExp;

  private constructor(private readonly sp: SentencePieceBpe, opts: TokenizerOptions, source: string) {
    const t = sp.model.trainer;
    this.vocabSize = sp.size;
    this.unkId = sp.unkId;
    // sentencepiece bos_id()/eos_id(): the id of trainer_spec's bos/eos piece when it is a control piece, else -1.
    const bosPiece = t.bosPiece ?? TRAINER_DEFAULTS.bosPiece, eosPiece = t.eosPiece ?? TRAINER_DEFAULTS.eosPiece;
    this.bosId = sp.controlId(bosPiece);
    this.eosId = sp.controlId(eosPiece);
    const defaults = [sp.idToPiece(sp.unkId), bosPiece, eosPiece, ...WRAPPER_SPECIAL_TOKENS];
    this.specialTokens = [...new Set(opts.specialTokens ?? defaults)];
    for (const s of this.specialTokens) {
      const id = s.length > 0 ? sp.lookup(s) : undefined;
      // HF would append a missing special token after the vocabulary; this project never relies on that.
      if (id === undefined) throw new TokenizerError(`${source}: special token ${JSON.stringify(s)} is not a piece of the model`);
      this.specialIds.set(s, id);
    }
    const alternatives = [...this.specialTokens].sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.specialRe = new RegExp(alternatives.join('|'), 'gu');
  }

  /** Parses the bytes of a `tokenizer.model`; corrupt data gives a TokenizerError naming `source`. */
  static fromBytes(bytes: Uint8Array, source: string, opts: TokenizerOptions = {}): MiniCPMTokenizer {
    return MiniCPMTokenizer.fromModel(parseSentencePieceModel(bytes, source), opts);
  }

  static fromModel(m: SentencePieceModel, opts: TokenizerOptions = {}): MiniCPMTokenizer {
    return new MiniCPMTokenizer(new SentencePieceBpe(m), opts, m.source ?? '<model>');
  }

  /** Drops the encoder's per-segment cache (benchmarks use it to time cold encoding). */
  clearCache(): void {
    this.sp.clearCache();
  }

  /** Id of a vocabulary piece (any type), or undefined. */
  pieceToId(piece: string): number | undefined {
    return this.sp.lookup(piece);
  }

  idToPiece(id: number): string {
    this.checkId(id, 'idToPiece');
    return this.sp.idToPiece(id);
  }

  /** HF `tokenizer.encode(text)`: `[bos] +` SentencePiece ids of the text, special strings mapped to their ids. */
  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`encode: text must be a string, got ${typeof text}`);
    const bad = LONE_SURROGATE.exec(text);
    if (bad) {
      const code = bad[0].charCodeAt(0).toString(16).toUpperCase();
      throw new TokenizerError(`encode: text has a lone surrogate U+${code} at index ${bad.index} (not encodable as UTF-8)`);
    }
    const ids: number[] = [];
    if (opts.addBos ?? true) {
      if (this.bosId < 0) throw new TokenizerError('encode: addBos requested but the model has no bos control piece');
      ids.push(this.bosId);
    }
    const pushText = (s: string) => {
      for (const id of this.sp.encode(s)) ids.push(id);
    };
    let last = 0;
    for (const m of text.matchAll(this.specialRe)) {
      if (m.index > last) pushText(text.slice(last, m.index));
      ids.push(this.specialIds.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < text.length) pushText(text.slice(last));
    return ids;
  }

  /**
   * HF `tokenizer.decode(ids)` in transformers 4.36 with skip_special_tokens=False,
   * spaces_between_special_tokens=False, clean_up_tokenization_spaces=False. convert_tokens_to_string there:
   *  - strips one leading U+2581 from the first token (unconditionally in 4.36; 4.40+ made it depend on
   *    add_prefix_space);
   *  - runs of ordinary pieces go through sp_model.decode;
   *  - subtle: a special token is emitted as its string, preceded by a space when the token before it is not
   *    special (legacy): the text "<s>x</s>" encodes (bos added) to <s> <s> x </s>, and those ids decode to
   *    "<s><s> x</s>". 4.40+ also inserts a space after a leading special token; 4.36 does not.
   */
  decode(ids: ArrayLike<number>): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) tokens.push(this.idToPiece(ids[i]));
    if (tokens.length === 0) return '';
    if (tokens[0].startsWith('\u2581')) tokens[0] = tokens[0].slice(1);
    let out = '';
    let sub: string[] = [];
    let prevSpecial = false;
    tokens.forEach((tok, i) => {
      if (this.specialIds.has(tok)) {
        if (!prevSpecial && i !== 0) out += ' ';
        out += this.sp.decodePieces(sub) + tok;
        sub = [];
        prevSpecial = true;
      } else {
        sub.push(tok);
        prevSpecial = false;
      }
    });
    return out + this.sp.decodePieces(sub);
  }

  private checkId(id: number, where: string): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new TokenizerError(`${where}: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
  }
}
