// A hand-written reader for SentencePiece's `ModelProto` (the `tokenizer.model` file), no protobuf dependency.
// Field numbers and defaults: google/sentencepiece src/sentencepiece_model.proto @ v0.1.99 (unchanged in 0.2.x).
import { TokenizerError } from './errors.ts';

/** `ModelProto.SentencePiece.Type`. */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
/** `TrainerSpec.ModelType`. */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  trainer: {
    modelType: number; byteFallback: boolean; unkId: number; bosId: number; eosId: number; padId: number;
    // The fields below are optional so that a model can be built by hand from the fields above; the parser always
    // fills them, and readers fall back to the proto defaults (TRAINER_DEFAULTS).
    unkPiece?: string; bosPiece?: string; eosPiece?: string; padPiece?: string;
    /** Text that sentencepiece's decoder prints for `<unk>` (default " \u2047 "). */
    unkSurface?: string;
    treatWhitespaceAsSuffix?: boolean;
  };
  normalizer: {
    name: string; addDummyPrefix: boolean; removeExtraWhitespaces: boolean; escapeWhitespaces: boolean;
    /** Byte length of `precompiled_charsmap`; 0 (or absent) means no character normalization (identity). */
    precompiledCharsmapBytes?: number;
  };
  /** Byte length of the denormalizer's charsmap (0 or absent: none). */
  denormalizerCharsmapBytes?: number;
  /** Where the bytes came from, for error messages. */
  source?: string;
}

const WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Cursor over one protobuf message (a sub-range of the file). Every read is bounds-checked. */
class Reader {
  pos: number;
  constructor(readonly bytes: Uint8Array, start: number, readonly end: number, readonly fail: (why: string) => never) {
    this.pos = start;
  }
  done(): boolean { return this.pos >= this.end; }

  /** Varint as a JS number (exact below 2^53; only the low 32 bits matter for int32 fields). */
  varint(): number {
    let result = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(`truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    return this.fail(`varint longer than 10 bytes at byte ${this.pos}`);
  }
  /** int32 fields are sign-extended to 64 bits on the wire (-1 takes ten bytes); the value is the low 32 bits. */
  int32(): number {
    let lo = 0;
    for (let i = 0, shift = 0; i < 10; i++, shift += 7) {
      if (this.pos >= this.end) this.fail(`truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      if (shift < 32) lo |= (b & 0x7f) << shift; // bits past 31 fall off, as intended
      if ((b & 0x80) === 0) return lo | 0;
    }
    return this.fail(`varint longer than 10 bytes at byte ${this.pos}`);
  }
  bool(): boolean { return this.varint() !== 0; }
  float32(): number {
    if (this.pos + 4 > this.end) this.fail(`truncated float at byte ${this.pos}`);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  /** Returns [start, end) of a length-delimited field and skips over it. */
  lengthDelimited(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) this.fail(`field of ${len} bytes at byte ${start} runs past the end of its message`);
    this.pos = start + len;
    return [start, start + len];
  }
  string(): string {
    const [s, e] = this.lengthDelimited();
    try {
      return utf8.decode(this.bytes.subarray(s, e));
    } catch {
      return this.fail(`string field at byte ${s} is not valid UTF-8`);
    }
  }
  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_LEN) this.lengthDelimited();
    else if (wire === WIRE_I64 || wire === WIRE_I32) {
      const n = wire === WIRE_I64 ? 8 : 4;
      if (this.pos + n > this.end) this.fail(`truncated fixed-width field at byte ${this.pos}`);
      this.pos += n;
    } else this.fail(`unsupported protobuf wire type ${wire} at byte ${this.pos}`);
  }
  /** Reads a tag; returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) this.fail(`invalid field number 0 at byte ${this.pos}`);
    return [field, t % 8];
  }
  sub(range: [number, number]): Reader { return new Reader(this.bytes, range[0], range[1], this.fail); }
}

function expectWire(r: Reader, got: number, want: number, what: string): void {
  if (got !== want) r.fail(`field ${what} has wire type ${got}, expected ${want}`);
}

function parsePiece(r: Reader): { piece: string; score: number; type: number } {
  const p = { piece: '', score: 0, type: PieceType.NORMAL as number };
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1) { expectWire(r, w, WIRE_LEN, 'SentencePiece.piece'); p.piece = r.string(); }
    else if (f === 2) { expectWire(r, w, WIRE_I32, 'SentencePiece.score'); p.score = r.float32(); }
    else if (f === 3) { expectWire(r, w, WIRE_VARINT, 'SentencePiece.type'); p.type = r.int32(); }
    else r.skip(w);
  }
  return p;
}

/** The proto's `[default = ...]` values of the TrainerSpec fields read here. */
export const TRAINER_DEFAULTS = {
  modelType: ModelType.UNIGRAM as number, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1,
  unkPiece: '<unk>', bosPiece: '<s>', eosPiece: '</s>', padPiece: '<pad>', unkSurface: ' \u2047 ',
  treatWhitespaceAsSuffix: false,
};

function parseTrainer(r: Reader): SentencePieceModel['trainer'] {
  const t = { ...TRAINER_DEFAULTS };
  while (!r.done()) {
    const [f, w] = r.tag();
    const v = (want: number) => expectWire(r, w, want, `TrainerSpec.${f}`);
    switch (f) {
      case 3: v(WIRE_VARINT); t.modelType = r.int32(); break;
      case 24: v(WIRE_VARINT); t.treatWhitespaceAsSuffix = r.bool(); break;
      case 35: v(WIRE_VARINT); t.byteFallback = r.bool(); break;
      case 40: v(WIRE_VARINT); t.unkId = r.int32(); break;
      case 41: v(WIRE_VARINT); t.bosId = r.int32(); break;
      case 42: v(WIRE_VARINT); t.eosId = r.int32(); break;
      case 43: v(WIRE_VARINT); t.padId = r.int32(); break;
      case 44: v(WIRE_LEN); t.unkSurface = r.string(); break;
      case 45: v(WIRE_LEN); t.unkPiece = r.string(); break;
      case 46: v(WIRE_LEN); t.bosPiece = r.string(); break;
      case 47: v(WIRE_LEN); t.eosPiece = r.string(); break;
      case 48: v(WIRE_LEN); t.padPiece = r.string(); break;
      default: r.skip(w);
    }
  }
  return t;
}

function parseNormalizer(r: Reader): SentencePieceModel['normalizer'] {
  const n = { name: '', addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true, precompiledCharsmapBytes: 0 };
  while (!r.done()) {
    const [f, w] = r.tag();
    const v = (want: number) => expectWire(r, w, want, `NormalizerSpec.${f}`);
    switch (f) {
      case 1: v(WIRE_LEN); n.name = r.string(); break;
      case 2: { v(WIRE_LEN); const [s, e] = r.lengthDelimited(); n.precompiledCharsmapBytes = e - s; break; }
      case 3: v(WIRE_VARINT); n.addDummyPrefix = r.bool(); break;
      case 4: v(WIRE_VARINT); n.removeExtraWhitespaces = r.bool(); break;
      case 5: v(WIRE_VARINT); n.escapeWhitespaces = r.bool(); break;
      default: r.skip(w);
    }
  }
  return n;
}

/**
 * Parses a serialized `ModelProto`. Throws `TokenizerError` naming `source` on any malformed byte, and when
 * `trainer_spec` or `normalizer_spec` is missing (every trained model has both; a file cut at a field boundary
 * parses as valid protobuf but loses them, so this is how truncation is caught).
 */
export function parseSentencePieceModel(bytes: Uint8Array, source = '<bytes>'): SentencePieceModel {
  const fail = (why: string): never => {
    throw new TokenizerError(`${source}: not a valid SentencePiece model (${why})`);
  };
  if (bytes.length === 0) fail('file is empty');
  const r = new Reader(bytes, 0, bytes.length, fail);
  const pieces: SentencePieceModel['pieces'] = [];
  let trainer: SentencePieceModel['trainer'] | undefined;
  let normalizer: SentencePieceModel['normalizer'] | undefined;
  let denormalizerCharsmapBytes = 0;
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f >= 1 && f <= 5) expectWire(r, w, WIRE_LEN, `ModelProto.${f}`);
    if (f === 1) pieces.push(parsePiece(r.sub(r.lengthDelimited())));
    else if (f === 2) trainer = parseTrainer(r.sub(r.lengthDelimited()));
    else if (f === 3) normalizer = parseNormalizer(r.sub(r.lengthDelimited()));
    else if (f === 5) denormalizerCharsmapBytes = parseNormalizer(r.sub(r.lengthDelimited())).precompiledCharsmapBytes ?? 0;
    else r.skip(w);
  }
  if (pieces.length === 0) fail('no pieces');
  if (!trainer) fail('no trainer_spec: file truncated?');
  if (!normalizer) fail('no normalizer_spec: file truncated?');
  return { pieces, trainer: trainer!, normalizer: normalizer!, denormalizerCharsmapBytes, source };
}
