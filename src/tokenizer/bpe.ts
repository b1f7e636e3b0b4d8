// SentencePiece BPE encode/decode, re-stated from google/sentencepiece @ v0.1.99 (same logic in 0.2.x):
//   src/normalizer.cc            Normalizer::Normalize (no charsmap: only whitespace handling)
//   src/bpe_model.cc             Model::SampleEncode with alpha 0 (user-defined symbols frozen, then merges)
//   src/model_interface.cc       InitializePieces, PieceToId
//   src/sentencepiece_processor.cc  PopulateSentencePieceText (byte fallback, unk runs) and Decode
// Strings here are JS (UTF-16) strings; sentencepiece works on UTF-8 bytes. Lengths differ but every decision
// (prefix matches, merge order, stale-entry checks) depends only on which characters a symbol covers.
import { TokenizerError } from './errors.ts';
import { ModelType, PieceType, TRAINER_DEFAULTS, type SentencePieceModel } from './sentencepiece_model.ts';
import { charLen, PrefixTrie, Scratch } from './structures.ts';

/** U+2581 LOWER ONE EIGHTH BLOCK: sentencepiece's escaped space (`kSpaceSymbol`). */
export const WS = '\u2581';
const WS_CODE = 0x2581;
const utf8Encoder = new TextEncoder();

const scratch = new Scratch();

const CACHE_MAX_ENTRIES = 1 << 18;
const CACHE_MAX_SEGMENT = 48;

/** A SentencePiece BPE processor: `sp_model.encode(text)` and `sp_model.decode(pieces)`. */
export class SentencePieceBpe {
  readonly size: number;
  readonly unkId: number;
  readonly byteFallback: boolean;
  private readonly pieces: string[];
  private readonly types: Uint8Array;
  private readonly scores: Float32Array;
  /** sentencepiece's `pieces_`: NORMAL, USER_DEFINED and UNUSED pieces; the only merge targets. */
  private readonly normalIds = new Map<string, number>();
  /** sentencepiece's `reserved_id_map_`: CONTROL, UNKNOWN and BYTE pieces; looked up first by PieceToId. */
  private readonly reservedIds = new Map<string, number>();
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly idToByte: Int16Array;
  private readonly userDefined: PrefixTrie | null;
  private readonly hasUnused: boolean;
  /** True when no piece has a non-space character followed by U+2581, so merges never cross "x|▁". */
  private readonly splitBeforeSpaces: boolean;
  readonly model: SentencePieceModel;
  private readonly cache = new Map<string, number[]>();

  constructor(model: SentencePieceModel) {
    const src = model.source ?? '<model>';
    const bad = (why: string): never => { throw new TokenizerError(`${src}: ${why}`); };
    if (model.trainer.modelType !== ModelType.BPE)
      bad(`model_type is ${model.trainer.modelType}, only BPE (2) is implemented`);
    if ((model.normalizer.precompiledCharsmapBytes ?? 0) > 0 || (model.denormalizerCharsmapBytes ?? 0) > 0)
      bad(`normalizer '${model.normalizer.name}' has a precompiled charsmap; only identity normalization is implemented`);
    if (model.trainer.treatWhitespaceAsSuffix) bad('treat_whitespace_as_suffix is not implemented');
    this.model = model;
    this.size = model.pieces.length;
    this.byteFallback = model.trainer.byteFallback;
    this.pieces = new Array<string>(this.size);
    this.types = new Uint8Array(this.size);
    this.scores = new Float32Array(this.size);
    this.idToByte = new Int16Array(this.size).fill(-1);
    const userDefined: string[] = [];
    let unkId = -1, hasUnused = false, splitBeforeSpaces = true;
    // Same checks, in the same order, as ModelInterface::InitializePieces.
    model.pieces.forEach(({ piece, score, type }, id) => {
      if (piece.length === 0) bad(`piece ${id} is empty`);
      if (type < PieceType.NORMAL || type > PieceType.BYTE) bad(`piece ${id} has unknown type ${type}`);
      this.pieces[id] = piece; this.types[id] = type; this.scores[id] = score;
      const normal = type === PieceType.NORMAL || type === PieceType.USER_DEFINED || type === PieceType.UNUSED;
      const map = normal ? this.normalIds : this.reservedIds;
      if (map.has(piece)) bad(`piece ${JSON.stringify(piece)} is defined twice (ids ${map.get(piece)} and ${id})`);
      map.set(piece, id);
      if (type === PieceType.USER_DEFINED) userDefined.push(piece);
      if (type === PieceType.UNUSED) hasUnused = true;
      if (type === PieceType.UNKNOWN) {
        if (unkId >= 0) bad(`two unknown pieces (ids ${unkId} and ${id})`);
        unkId = id;
      }
      if (type === PieceType.BYTE) {
        if (!this.byteFallback) bad(`byte piece ${piece} (id ${id}) found although byte_fallback is false`);
        const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
        if (!m) bad(`byte piece ${JSON.stringify(piece)} (id ${id}) is not of the form <0xNN>`);
        const b = parseInt(m![1], 16);
        this.byteToId[b] = id; this.idToByte[id] = b;
      }
      if (normal && splitBeforeSpaces) {
        for (let k = 1; k < piece.length; k++)
          if (piece.charCodeAt(k) === WS_CODE && piece.charCodeAt(k - 1) !== WS_CODE) splitBeforeSpaces = false;
      }
    });
    if (unkId < 0) bad('no unknown piece (type UNKNOWN)');
    if (this.byteFallback && this.byteToId.includes(-1)) bad('byte_fallback is true but not all 256 byte pieces exist');
    this.unkId = unkId;
    this.hasUnused = hasUnused;
    this.splitBeforeSpaces = splitBeforeSpaces && model.normalizer.escapeWhitespaces;
    this.userDefined = userDefined.length > 0 ? new PrefixTrie(userDefined) : null;
  }

  /** Drops the per-segment cache (for benchmarks; results never depend on it). */
  clearCache(): void { this.cache.clear(); }

  idToPiece(id: number): string { return this.pieces[id]; }
  pieceType(id: number): number { return this.types[id]; }
  pieceScore(id: number): number { return this.scores[id]; }
  /** `SentencePieceProcessor::PieceToId`: reserved pieces first, then normal ones, else the unknown id. */
  pieceToId(piece: string): number {
    return this.reservedIds.get(piece) ?? this.normalIds.get(piece) ?? this.unkId;
  }
  /** Id of `piece` if it is in the vocabulary at all. */
  lookup(piece: string): number | undefined {
    return this.reservedIds.get(piece) ?? this.normalIds.get(piece);
  }
  /** `SentencePieceProcessor::bos_id()` style: id of `piece` if it is a control piece, else -1. */
  controlId(piece: string): number {
    const id = this.lookup(piece);
    return id !== undefined && this.types[id] === PieceType.CONTROL ? id : -1;
  }

  /** Normalizer::Normalize without a charsmap. Units are user-defined symbols or single characters. */
  normalize(input: string): string {
    const { addDummyPrefix, removeExtraWhitespaces: removeExtra, escapeWhitespaces: escape } = this.model.normalizer;
    const space = escape ? WS : ' ';
    if (!addDummyPrefix && !removeExtra) return escape ? input.replaceAll(' ', WS) : input;
    const unit = (pos: number) => this.userDefined?.longest(input, pos) || charLen(input, pos);
    let pos = 0;
    if (removeExtra) {
      while (pos < input.length && input.charCodeAt(pos) === 0x20 && unit(pos) === 1) pos++;
    }
    if (pos >= input.length) return '';
    let out = addDummyPrefix ? space : '';
    let prevSpace = removeExtra;
    while (pos < input.length) {
      const len = unit(pos);
      let piece = input.slice(pos, pos + len);
      if (prevSpace) piece = piece.replace(/^ +/, '');
      if (piece.length > 0) {
        out += escape ? piece.replaceAll(' ', WS) : piece;
        prevSpace = piece.endsWith(' ');
      }
      pos += len;
      if (!removeExtra) prevSpace = false;
    }
    if (removeExtra) while (out.endsWith(space)) out = out.slice(0, -space.length);
    return out;
  }

  /** `sp_model.encode(text)` (no bos/eos): ids of the pieces. */
  encode(text: string): number[] {
    const norm = this.normalize(text);
    const out: number[] = [];
    let runStart = 0, i = 0;
    while (i < norm.length) {
      const m = this.userDefined ? this.userDefined.longest(norm, i) : 0;
      if (m > 0) {
        // A user-defined symbol is frozen: it never merges with a neighbour (bpe_model.cc, `freeze`).
        this.encodeRun(norm, runStart, i, out);
        out.push(this.pieceToId(norm.slice(i, i + m)));
        i += m;
        runStart = i;
      } else i += charLen(norm, i);
    }
    this.encodeRun(norm, runStart, norm.length, out);
    if (!this.byteFallback) return this.mergeUnknownRuns(out);
    return out;
  }

  /** Without byte fallback, consecutive unknown pieces become one `<unk>` (PopulateSentencePieceText). */
  private mergeUnknownRuns(ids: number[]): number[] {
    return ids.filter((id, k) => !(id === this.unkId && k > 0 && ids[k - 1] === this.unkId));
  }

  /**
   * BPE over the unfrozen characters norm[start, end). When `splitBeforeSpaces` holds, a merged symbol can never
   * contain "x▁" (it is always a piece), so each "▁*[^▁]*" segment merges independently of its neighbours and its
   * result can be cached.
   */
  private encodeRun(norm: string, start: number, end: number, out: number[]): void {
    if (start >= end) return;
    let segStart = start;
    if (this.splitBeforeSpaces) {
      for (let k = start + 1; k < end; k++) {
        if (norm.charCodeAt(k) === WS_CODE && norm.charCodeAt(k - 1) !== WS_CODE) {
          this.encodeSegment(norm.slice(segStart, k), out);
          segStart = k;
        }
      }
    }
    this.encodeSegment(norm.slice(segStart, end), out);
  }

  private encodeSegment(seg: string, out: number[]): void {
    const cacheable = seg.length <= CACHE_MAX_SEGMENT;
    let ids = cacheable ? this.cache.get(seg) : undefined;
    if (!ids) {
      ids = [];
      for (const piece of this.mergeSegment(seg)) this.emitPiece(piece, ids);
      if (cacheable) {
        if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
        this.cache.set(seg, ids);
      }
    }
    for (let k = 0; k < ids.length; k++) out.push(ids[k]);
  }

  /** PieceToId plus byte fallback for an unknown piece (PopulateSentencePieceText). */
  private emitPiece(piece: string, out: number[]): void {
    const id = this.pieceToId(piece);
    if (id !== this.unkId || !this.byteFallback) { out.push(id); return; }
    for (const b of utf8Encoder.encode(piece)) out.push(this.byteToId[b]);
  }

  /** The BPE merge loop of bpe_model.cc on one segment of unfrozen characters; returns the final pieces. */
  mergeSegment(seg: string): string[] {
    // Symbols form a linked list over scratch arrays (reused across calls: encode is not re-entrant).
    const sc = scratch;
    sc.ensure(seg.length);
    const { pos, len, prev, next, heap } = sc;
    let n = 0;
    for (let i = 0; i < seg.length; n++) {
      const l = charLen(seg, i);
      pos[n] = i; len[n] = l; prev[n] = n - 1; next[n] = n + 1;
      i += l;
    }
    if (n === 1) return [seg];
    next[n - 1] = -1;
    heap.n = 0;
    const revMerge = this.hasUnused ? new Map<string, [string, string]>() : null;
    for (let i = 1; i < n; i++) this.maybeAddPair(seg, i - 1, i, revMerge);
    while (heap.n > 0) {
      const t = heap.pop();
      const l = heap.left[t], r = heap.right[t];
      // Stale entry: one side was merged away or grew since this pair was queued.
      if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== heap.size[t]) continue;
      len[l] += len[r];
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      len[r] = 0;
      if (prev[l] >= 0) this.maybeAddPair(seg, prev[l], l, revMerge);
      if (next[l] >= 0) this.maybeAddPair(seg, l, next[l], revMerge);
    }
    const result: string[] = [];
    for (let i = 0; i !== -1; i = next[i]) this.resegment(seg.substr(pos[i], len[i]), revMerge, result);
    return result;
  }

  /** bpe_model.cc MaybeAddNewSymbolPair: queue (l, r) if their concatenation is a piece. */
  private maybeAddPair(seg: string, l: number, r: number, revMerge: Map<string, [string, string]> | null): void {
    const { pos, len, heap } = scratch;
    const piece = seg.substr(pos[l], len[l] + len[r]);
    const id = this.normalIds.get(piece);
    if (id === undefined) return;
    heap.push(this.scores[id], l, r, piece.length);
    if (revMerge && this.types[id] === PieceType.UNUSED)
      revMerge.set(piece, [seg.substr(pos[l], len[l]), seg.substr(pos[r], len[r])]);
  }

  /** Splits UNUSED pieces back into the pieces they were merged from (bpe_model.cc `resegment`). */
  private resegment(w: string, revMerge: Map<string, [string, string]> | null, out: string[]): void {
    const id = this.lookup(w);
    const split = revMerge && id !== undefined && this.types[id] === PieceType.UNUSED ? revMerge.get(w) : undefined;
    if (!split) { out.push(w); return; }
    this.resegment(split[0], revMerge, out);
    this.resegment(split[1], revMerge, out);
  }

  /** `sp_model.decode(pieces)` (SentencePieceProcessor::Decode): U+2581 -> space, byte runs -> UTF-8. */
  decodePieces(pieces: string[]): string {
    const { addDummyPrefix, removeExtraWhitespaces } = this.model.normalizer;
    const ids = pieces.map((p) => this.pieceToId(p));
    let text = '', isBosWs = true, bosWsSeen = false, byteStart = 0;
    for (let i = 0; i < pieces.length; i++) {
      if (this.types[ids[i]] === PieceType.BYTE) continue;
      text += this.decodeBytes(ids, byteStart, i);
      if (bosWsSeen || text.length > 0) isBosWs = false;
      byteStart = i + 1;
      const id = ids[i];
      let piece = pieces[i];
      bosWsSeen = false;
      if (this.types[id] === PieceType.CONTROL) continue; // <s>, </s>: invisible
      if (this.types[id] === PieceType.UNKNOWN) {
        text += piece === this.pieces[id] ? this.model.trainer.unkSurface ?? TRAINER_DEFAULTS.unkSurface : piece;
        continue;
      }
      // subtle: only models with a dummy prefix (or whitespace removal) drop the first piece's leading "▁".
      if (isBosWs && (addDummyPrefix || removeExtraWhitespaces) && piece.startsWith(WS)) {
        piece = piece.slice(1);
        bosWsSeen = !removeExtraWhitespaces;
      }
      text += piece.replaceAll(WS, ' ');
    }
    return text + this.decodeBytes(ids, byteStart, pieces.length);
  }

  /** Byte pieces ids[from, to) as UTF-8; each byte of a malformed sequence becomes U+FFFD (util.cc DecodeUTF8). */
  private decodeBytes(ids: number[], from: number, to: number): string {
    if (from >= to) return '';
    const b = ids.slice(from, to).map((id) => this.idToByte[id]);
    let s = '';
    const trail = (k: number) => (b[k] & 0xc0) === 0x80;
    const validCp = (c: number) => c < 0xd800 || (c >= 0xe000 && c <= 0x10ffff);
    for (let i = 0; i < b.length; ) {
      const left = b.length - i, b0 = b[i];
      let cp = -1, used = 1;
      if (b0 < 0x80) cp = b0;
      else if (left >= 2 && (b0 & 0xe0) === 0xc0) {
        const c = ((b0 & 0x1f) << 6) | (b[i + 1] & 0x3f);
        if (trail(i + 1) && c >= 0x80 && validCp(c)) { cp = c; used = 2; }
      } else if (left >= 3 && (b0 & 0xf0) === 0xe0) {
        const c = ((b0 & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f);
        if (trail(i + 1) && trail(i + 2) && c >= 0x800 && validCp(c)) { cp = c; used = 3; }
      } else if (left >= 4 && (b0 & 0xf8) === 0xf0) {
        const c = ((b0 & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) | (b[i + 3] & 0x3f);
        if (trail(i + 1) && trail(i + 2) && trail(i + 3) && c >= 0x10000 && validCp(c)) { cp = c; used = 4; }
      }
      s += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
      i += used;
    }
    return s;
  }
}

/**
 * Slow oracle for `mergeSegment`: repeatedly merge the best adjacent pair (highest score, leftmost on ties) until
 * none is a piece. No heap, no linked list. Returns the final symbols (before UNUSED resegmentation).
 */
export function mergeSegmentSlow(seg: string, scoreOf: (piece: string) => number | undefined): string[] {
  const syms: string[] = [];
  for (let i = 0; i < seg.length; i += charLen(seg, i)) syms.push(seg.slice(i, i + charLen(seg, i)));
  for (;;) {
    let best = -1, bestScore = -Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const s = scoreOf(syms[i] + syms[i + 1]);
      if (s !== undefined && (best < 0 || s > bestScore)) { best = i; bestScore = s; }
    }
    if (best < 0) return syms;
    syms.splice(best, 2, syms[best] + syms[best + 1]);
  }
}
