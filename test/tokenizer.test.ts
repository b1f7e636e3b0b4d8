// Tokenizer tests. Expected ids come from outside this code: the golden file (original HF slow tokenizer) and
// fixtures written by reference/tokenizer_corpus.py with the real `sentencepiece` library. Token ids are exact.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { mergeSegmentSlow, SentencePieceBpe } from '../src/tokenizer/bpe.ts';
import { PieceType, parseSentencePieceModel, type SentencePieceModel } from '../src/tokenizer/sentencepiece_model.ts';
import { MiniCPMTokenizer, TokenizerError } from '../src/tokenizer/tokenizer.ts';
import { loadTokenizerFile } from '../src/tokenizer/file.ts';
import { fixturesDir, goldenDir, referenceDir } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const FIX = path.join(fixturesDir, 'tokenizer');
const REAL_MODEL = path.join(referenceDir, 'tokenizer.model');
const readJson = (p: string) => JSON.parse(fs.readFileSync(p, 'utf8'));

interface Line { text: string; ids: number[]; decoded?: string }
interface DecodeCase { ids: number[]; decoded: string }
interface SpDecodeCase { pieces: string[]; decoded: string }

/** sentencepiece's own decode of piece lists, including control, <unk> and non-pieces. */
function expectSpDecoded(modelPath: string, cases: SpDecodeCase[], what: string): void {
  const bpe = new SentencePieceBpe(parseSentencePieceModel(fs.readFileSync(modelPath), modelPath));
  const bad = cases.filter((c) => bpe.decodePieces(c.pieces) !== c.decoded)
    .map((c) => `${JSON.stringify(c.pieces)}: got ${JSON.stringify(bpe.decodePieces(c.pieces))}, expected ${JSON.stringify(c.decoded)}`);
  expect(bad.length, `${what}: ${bad.length} of ${cases.length} differ\n${bad.slice(0, 5).join('\n')}`).toBe(0);
}

/** Compares every line; on failure reports how many differ and the first few with their first differing index. */
function expectAllEncoded(tok: MiniCPMTokenizer, lines: Line[], what: string): void {
  const bad: string[] = [];
  for (const [k, l] of lines.entries()) {
    const got = tok.encode(l.text);
    if (got.length === l.ids.length && got.every((v, i) => v === l.ids[i])) continue;
    let i = 0;
    while (i < got.length && got[i] === l.ids[i]) i++;
    bad.push(`line ${k} ${JSON.stringify(l.text.slice(0, 60))}: first diff at ${i}: got ` +
      `${JSON.stringify(got.slice(i, i + 5))}, expected ${JSON.stringify(l.ids.slice(i, i + 5))}`);
  }
  expect(bad.length, `${what}: ${bad.length} of ${lines.length} lines differ\n${bad.slice(0, 5).join('\n')}`).toBe(0);
}

function expectAllDecoded(tok: MiniCPMTokenizer, cases: DecodeCase[], what: string): void {
  const bad = cases.filter((c) => tok.decode(c.ids) !== c.decoded)
    .map((c) => `${JSON.stringify(c.ids)}: got ${JSON.stringify(tok.decode(c.ids))}, expected ${JSON.stringify(c.decoded)}`);
  expect(bad.length, `${what}: ${bad.length} of ${cases.length} decodes differ\n${bad.slice(0, 5).join('\n')}`).toBe(0);
}

const realModel = shared('reference', 'tokenizer.model');
describe.skipIf(unmet(realModel))(named('real MiniCPM-V tokenizer.model', realModel), () => {
  let tok: MiniCPMTokenizer;
  let model: SentencePieceModel;
  beforeAll(() => {
    model = parseSentencePieceModel(fs.readFileSync(REAL_MODEL), REAL_MODEL);
    tok = MiniCPMTokenizer.fromModel(model);
  });

  it('parses the model: counts, types, ids, normalizer (SPEC section 7)', () => {
    expect(model.pieces.length).toBe(122_753);
    expect(tok.vocabSize).toBe(122_753);
    const count = (t: number) => model.pieces.filter((p) => p.type === t).length;
    expect(count(PieceType.USER_DEFINED)).toBe(1086);
    expect(count(PieceType.BYTE)).toBe(256);
    expect(count(PieceType.CONTROL)).toBe(2);
    expect(count(PieceType.UNKNOWN)).toBe(1);
    for (let b = 0; b < 256; b++) {
      const p = model.pieces[1089 + b];
      expect([p.piece, p.type]).toEqual([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, PieceType.BYTE]);
    }
    expect([tok.unkId, tok.bosId, tok.eosId]).toEqual([0, 1, 2]);
    expect([tok.idToPiece(0), tok.idToPiece(1), tok.idToPiece(2), tok.idToPiece(5), tok.idToPiece(1099)])
      .toEqual(['<unk>', '<s>', '</s>', '\n', '<0x0A>']);
    expect(tok.specialTokens.map((s) => tok.pieceToId(s)))
      .toEqual([0, 1, 2, 101, 102, 103, 104, 105, 106, 107, 108]);
    expect(model.trainer).toMatchObject({ modelType: 2, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 });
    expect(model.normalizer).toMatchObject({
      name: 'identity', addDummyPrefix: false, removeExtraWhitespaces: false, escapeWhitespaces: true,
      precompiledCharsmapBytes: 0,
    });
    // Scores are float32 merge ranks: "▁▁" is the first merge (score -0), "▁t" the second (-1).
    expect([model.pieces[1345].piece, model.pieces[1345].score, model.pieces[1346].piece, model.pieces[1346].score])
      .toEqual(['\u2581\u2581', -0, '\u2581t', -1]);
  });

  it('matches all 20 golden cases (ids from the original HF tokenizer, decode from transformers 4.36)', () => {
    const golden = readJson(path.join(goldenDir, 'tokenizer-cases.json'));
    expect(golden.cases.length).toBe(20);
    for (const c of golden.cases) {
      expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tok.decode(c.ids), JSON.stringify(c.text)).toBe(c.decoded);
    }
  });

  it('matches sentencepiece on every line of the mixed corpus', () => {
    const corpus = readJson(path.join(FIX, 'corpus_ids.json'));
    const sha = corpus.tokenizer_model_sha256;
    expect(sha, 'fixture was generated from this tokenizer.model').toBe(readJson(path.join(goldenDir, 'tokenizer-cases.json')).tokenizer_model_sha256);
    expect(corpus.lines.length).toBeGreaterThan(700);
    expectAllEncoded(tok, corpus.lines, 'corpus');
  });

  it('round-trips the corpus: decode(encode(x)) is "<s>" + x, or the recorded 4.36 decode with specials', () => {
    const corpus = readJson(path.join(FIX, 'corpus_ids.json'));
    const bad: string[] = [];
    let plain = 0;
    for (const l of corpus.lines as Line[]) {
      const expected = l.decoded ?? '<s>' + l.text;
      if (l.decoded === undefined) plain++;
      const got = tok.decode(tok.encode(l.text));
      if (got !== expected) bad.push(`${JSON.stringify(l.text)} -> ${JSON.stringify(got)}`);
    }
    expect(plain).toBeGreaterThan(600);
    expect(bad.length, bad.slice(0, 5).join('\n')).toBe(0);
  });

  it('decodes random id sequences like transformers 4.36 + sentencepiece (broken UTF-8 -> U+FFFD per byte)', () => {
    const corpus = readJson(path.join(FIX, 'corpus_ids.json'));
    expectAllDecoded(tok, corpus.decode_cases, 'decode cases');
    expectSpDecoded(REAL_MODEL, corpus.sp_decode_cases, 'sp.decode cases');
    expect(tok.decode([1329, 1250])).toBe('\ufffd\ufffd'); // first two bytes of a 4-byte character
    expect(tok.decode([1329, 1250, 1220, 1218])).toBe('𡃁');
  });

  it('encodes the prompt pieces of SPEC section 6', () => {
    expect(tok.encode('<用户>', { addBos: false })).toEqual([95396, 4194, 95388]);
    expect(tok.encode('<AI>', { addBos: false })).toEqual([95396, 10850, 95388]);
    const prompt = '<用户><image>' + '<unk>'.repeat(64) + '</image>\nWhat is in the image?<AI>';
    const ids = tok.encode(prompt);
    expect(ids).toEqual([1, 95396, 4194, 95388, 101, ...new Array(64).fill(0), 102, 5,
      5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388]);
    expect(ids.length).toBe(80);
    expect([ids.indexOf(101) + 1, ids.indexOf(102)]).toEqual([5, 69]); // image_bound
  });

  it('fast BPE merge equals the slow oracle on corpus segments', () => {
    const bpe = new SentencePieceBpe(model);
    const scoreOf = (p: string) => {
      const id = tok.pieceToId(p);
      const t = id === undefined ? 0 : model.pieces[id].type;
      return t === PieceType.NORMAL || t === PieceType.USER_DEFINED || t === PieceType.UNUSED ? model.pieces[id!].score : undefined;
    };
    const corpus = readJson(path.join(FIX, 'corpus_ids.json')).lines as Line[];
    let n = 0;
    for (const l of corpus.filter((_, k) => k % 3 === 0)) {
      for (const seg of bpe.normalize(l.text).split(/(?<=[^\u2581])(?=\u2581)/)) {
        if (seg.length === 0 || seg.length > 200) continue;
        expect(bpe.mergeSegment(seg), JSON.stringify(seg)).toEqual(mergeSegmentSlow(seg, scoreOf));
        n++;
      }
    }
    expect(n).toBeGreaterThan(1000);
  });

  it('rejects a truncated copy of the real model, naming the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-'));
    const bytes = fs.readFileSync(REAL_MODEL);
    for (const cut of [bytes.length >> 1, 1000, bytes.length - 3]) {
      const p = path.join(dir, `cut${cut}.model`);
      fs.writeFileSync(p, bytes.subarray(0, cut));
      expect(() => loadTokenizerFile(p)).toThrow(TokenizerError);
      expect(() => loadTokenizerFile(p)).toThrow(p);
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describe('tiny BPE models trained by reference/tokenizer_corpus.py (no shared data needed)', () => {
  interface TinyModel { model: string; lines: Line[]; decode_cases: DecodeCase[]; sp_decode_cases: SpDecodeCase[] }
  const models: TinyModel[] = readJson(path.join(FIX, 'tiny_models.json')).models;
  it.each(models.map((m) => m.model))('%s: ids and 4.36 decodes match sentencepiece', (name: string) => {
    const m = models.find((x) => x.model === name)!;
    const tok = loadTokenizerFile(path.join(FIX, name));
    expect([tok.unkId, tok.bosId, tok.eosId, tok.pieceToId('<image>'), tok.pieceToId('</quad>')]).toEqual([0, 1, 2, 5, 12]);
    expectAllEncoded(tok, m.lines, name);
    expectAllDecoded(tok, m.lines.map((l) => ({ ids: l.ids, decoded: l.decoded! })), name);
    expectAllDecoded(tok, m.decode_cases, `${name} decode cases`);
    expectSpDecoded(path.join(FIX, name), m.sp_decode_cases, `${name} sp.decode cases`);
  });
});

/** Minimal protobuf writer, to build models the trainer would never emit. */
const pb = {
  varint(v: number): number[] {
    const out: number[] = [];
    let x = BigInt.asUintN(64, BigInt(v));
    do { const b = Number(x & 0x7fn); x >>= 7n; out.push(x ? b | 0x80 : b); } while (x);
    return out;
  },
  field(f: number, wire: number, body: number[]): number[] {
    const tag = pb.varint(f * 8 + wire);
    return wire === 2 ? [...tag, ...pb.varint(body.length), ...body] : [...tag, ...body];
  },
  str: (f: number, s: string) => pb.field(f, 2, [...new TextEncoder().encode(s)]),
  int: (f: number, v: number) => pb.field(f, 0, pb.varint(v)),
  float(f: number, v: number): number[] {
    const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true);
    return pb.field(f, 5, [...b]);
  },
  piece: (p: string, score: number, type: number) => pb.field(1, 2, [...pb.str(1, p), ...pb.float(2, score), ...pb.int(3, type)]),
};

function handModel(opts: { modelType?: number; extraPieces?: number[][]; trainer?: number[] } = {}): Uint8Array {
  const pieces = [
    pb.piece('<unk>', 0, 2), pb.piece('<s>', 0, 3), pb.piece('</s>', 0, 3),
    ...['<image>', '</image>', '<ref>', '</ref>', '<box>', '</box>', '<quad>', '</quad>'].map((s) => pb.piece(s, 0, 4)),
    pb.piece('a', -1, 1), pb.piece('b', -2, 1), pb.piece('ab', -3, 1), pb.piece('\u2581', -4, 1),
    ...(opts.extraPieces ?? []),
  ];
  const trainer = pb.field(2, 2, [...pb.int(3, opts.modelType ?? 2), ...pb.int(43, -1), ...(opts.trainer ?? [])]);
  const normalizer = pb.field(3, 2, [...pb.str(1, 'identity'), ...pb.int(3, 0), ...pb.int(4, 0)]);
  return new Uint8Array([...pieces.flat(), ...trainer, ...normalizer]);
}

describe('bad input gives a TokenizerError with a clear message', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-bad-'));
  const tinyBytes = fs.readFileSync(path.join(FIX, 'tiny_identity.model'));
  const write = (name: string, bytes: Uint8Array | string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  const expectFileError = (p: string, msg: RegExp) => {
    let err: unknown;
    try { loadTokenizerFile(p); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as Error).message).toContain(p);
    expect((err as Error).message).toMatch(msg);
  };

  it('missing file, directory, special files (refused at once: /dev/zero would be read forever, a pipe would block)', () => {
    expectFileError(path.join(dir, 'nope.model'), /tokenizer model .*nope\.model does not exist/);
    expectFileError(dir, /tokenizer model .* is a directory, not a regular file/);
    expectFileError('/dev/zero', /is a character device, not a regular file/);
    const fifo = path.join(dir, 'pipe.model');
    execFileSync('mkfifo', [fifo]);
    expectFileError(fifo, /is a named pipe, not a regular file/);
  });

  it('empty, truncated, corrupt and non-protobuf files', () => {
    expectFileError(write('empty.model', new Uint8Array()), /file is empty/);
    expectFileError(write('half.model', tinyBytes.subarray(0, tinyBytes.length >> 1)), /not a valid SentencePiece model/);
    expectFileError(write('cut.model', tinyBytes.subarray(0, tinyBytes.length - 1)), /not a valid SentencePiece model/);
    // Cut exactly after the last piece: valid protobuf, but the specs are gone.
    const model = parseSentencePieceModel(tinyBytes);
    let end = 0;
    for (let k = 0; k < model.pieces.length; k++) {
      expect(tinyBytes[end]).toBe(0x0a); // field 1, length-delimited
      let len = 0, shift = 0, b: number;
      end++;
      do { b = tinyBytes[end++]; len += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
      end += len;
    }
    expectFileError(write('pieces_only.model', tinyBytes.subarray(0, end)), /no trainer_spec/);
    expectFileError(write('json.model', '{"not": "a model"}\n'), /not a valid SentencePiece model/);
    const flipped = Uint8Array.from(tinyBytes);
    for (let k = 100; k < flipped.length; k += 97) flipped[k] ^= 0xff;
    expectFileError(write('flipped.model', flipped), /not a valid SentencePiece model|piece|UTF-8/);
  });

  it('hand-built models: parses negative int32, rejects unsupported or inconsistent models', () => {
    const good = parseSentencePieceModel(handModel(), 'hand.model');
    expect(good.trainer.padId).toBe(-1);
    const tok = MiniCPMTokenizer.fromModel(good);
    // "ab▁a▁b▁" | <image> | "ba": only "ab" is a merge; "▁a" is not a piece.
    expect(tok.encode('ab a b <image>ba')).toEqual([1, 13, 14, 11, 14, 12, 14, 3, 12, 11]);
    const bad = (bytes: Uint8Array, msg: RegExp) =>
      expect(() => MiniCPMTokenizer.fromModel(parseSentencePieceModel(bytes, 'hand.model'))).toThrow(msg);
    bad(handModel({ modelType: 1 }), /hand\.model: model_type is 1, only BPE/);
    bad(handModel({ extraPieces: [pb.piece('a', 0, 1)] }), /"a" is defined twice/);
    bad(handModel({ extraPieces: [pb.piece('<0x41>', 0, 6)] }), /byte_fallback is false/);
    bad(handModel({ trainer: pb.int(35, 1) }), /not all 256 byte pieces/);
    bad(handModel({ extraPieces: [pb.piece('<unk2>', 0, 2)] }), /two unknown pieces/);
    expect(() => MiniCPMTokenizer.fromModel(good, { specialTokens: ['<point>'] })).toThrow(/"<point>" is not a piece/);
    // UNUSED pieces are merged through and then split back (bpe_model.cc resegment); without byte fallback a run of
    // unknown characters is one <unk>. Expected ids: sentencepiece 0.2.2 on these same model bytes.
    const unused = parseSentencePieceModel(handModel({ extraPieces: [pb.piece('c', -5, 1), pb.piece('bc', -6, 5),
      pb.piece('abc', -7, 1), pb.piece('bcd', -8, 1), pb.piece('d', -9, 1), pb.piece('cd', -10, 5)] }), 'unused.model');
    const sp = new SentencePieceBpe(unused);
    const spCases: [string, number[]][] = [['abc', [17]], ['bc', [12, 15]], ['bcd', [18]], ['cd', [15, 19]],
      ['xbcdx', [0, 18, 0]], ['c d bcbc', [15, 14, 19, 14, 12, 15, 12, 15]], ['xyab', [0, 13]], ['x y', [0, 14, 0]]];
    for (const [text, ids] of spCases) expect(sp.encode(text), text).toEqual(ids);
    // sp.decode: <unk> prints unk_surface, an unknown piece prints as is (its U+2581 kept), <s> prints nothing.
    expect(sp.decodePieces(['<unk>', 'a', 'xyz', '\u2581b', '<s>'])).toBe(' \u2047 axyz\u2581b');
    // A model built by hand with only the fields of the documented interface.
    const minimal: SentencePieceModel = {
      pieces: good.pieces,
      trainer: { modelType: 2, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 },
      normalizer: { name: 'identity', addDummyPrefix: false, removeExtraWhitespaces: false, escapeWhitespaces: true },
    };
    expect(MiniCPMTokenizer.fromModel(minimal).encode('ab a</s>')).toEqual([1, 13, 14, 11, 2]);
    // 4.36 legacy: the space goes before the text that precedes a special token (cf. golden "<s><s> x</s>").
    expect(MiniCPMTokenizer.fromModel(minimal).decode([1, 13, 14, 0, 2])).toBe('<s> ab <unk></s>');
    expect(() => MiniCPMTokenizer.fromModel({ ...minimal, normalizer: { ...minimal.normalizer, precompiledCharsmapBytes: 9 } }))
      .toThrow(/<model>: normalizer 'identity' has a precompiled charsmap/);
  });

  it('bad ids and bad text', () => {
    const tok = loadTokenizerFile(path.join(FIX, 'tiny_identity.model'));
    expect(() => tok.decode([1, 700])).toThrow(/token id 700 is outside the vocabulary \[0, 700\)/);
    expect(() => tok.decode([-1])).toThrow(TokenizerError);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
    expect(() => tok.encode('ok \ud800 no')).toThrow(/lone surrogate U\+D800 at index 3/);
    expect(() => tok.encode('\udc00')).toThrow(TokenizerError);
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { addBos: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
  });
});
