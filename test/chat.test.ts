// The chat template, prompt encoding, truncation and output clean-up of the
// original chat() (SPEC section 6), checked against the real tokenizer.
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPrompt, cleanOutput, encodePrompt, MAX_INPUT_LENGTH, PromptError, TextStreamer } from '../src/model/chat.ts';
import { loadTokenizerFile } from '../src/tokenizer/file.ts';
import type { MiniCPMTokenizer } from '../src/tokenizer/tokenizer.ts';
import { referenceDir } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const IMG = `<image>${'<unk>'.repeat(64)}</image>\n`;

describe('buildPrompt', () => {
  it('one user turn: image placeholder in front, <AI> at the end', () => {
    expect(buildPrompt([{ role: 'user', content: 'What is in the image?' }], 64)).toBe(`<用户>${IMG}What is in the image?<AI>`);
  });

  it('multi-turn: no separators, the image only in the first message', () => {
    const p = buildPrompt([
      { role: 'user', content: 'Q1' }, { role: 'assistant', content: 'A1' }, { role: 'user', content: 'Q2' },
    ], 64);
    expect(p).toBe(`<用户>${IMG}Q1<AI>A1<用户>Q2<AI>`);
    expect(p.split('<image>').length).toBe(2);
  });

  it("accepts special strings in the assistant's own earlier answers", () => {
    const p = buildPrompt([{ role: 'user', content: 'Q1' }, { role: 'assistant', content: 'a <box>(1,2)</box>' }, { role: 'user', content: 'Q2' }], 64);
    expect(p.endsWith('<AI>a <box>(1,2)</box><用户>Q2<AI>')).toBe(true);
  });

  it.each([
    [[], /non-empty list/],
    [[{ role: 'assistant', content: 'hi' }], /first message must be from the user/],
    [[{ role: 'system', content: 'hi' }], /role must be "user" or "assistant"/],
    [[{ role: 'user', content: '   ' }], /user's text is empty/],
    [[{ role: 'user', content: 'look at <image> this' }], /reserved token string "<image>"/],
    [[{ role: 'user', content: 'a</s>b' }], /reserved token string "<\/s>"/],
    [[{ role: 'user', content: 7 }], /content must be a string/],
  ] as [unknown[], RegExp][])('refuses %j', (msgs, re) => {
    expect(() => buildPrompt(msgs as never, 64)).toThrow(PromptError);
    expect(() => buildPrompt(msgs as never, 64)).toThrow(re);
  });
});

const realTokenizer = shared('reference', 'tokenizer.model');
describe.skipIf(unmet(realTokenizer))(named('with the real tokenizer', realTokenizer), () => {
  let tok: MiniCPMTokenizer;
  beforeAll(() => {
    tok = loadTokenizerFile(path.join(referenceDir, 'tokenizer.model'));
  });

  it('encodes the SPEC example to the original 80 ids with image_bound [5, 69]', () => {
    const e = encodePrompt(tok, buildPrompt([{ role: 'user', content: 'What is in the image?' }], 64));
    expect(e.ids).toEqual([1, 95396, 4194, 95388, 101, ...new Array(64).fill(0), 102, 5, 5856, 1410, 1377, 1358, 3766, 74,
      95396, 10850, 95388]);
    expect(e.bounds).toEqual([{ start: 5, end: 69 }]);
    expect(e.truncated).toBe(false);
  });

  it('keeps the first 2048 ids of a longer prompt, as the original, and says so', () => {
    const long = Array.from({ length: 3000 }, (_, i) => `word${i}`).join(' ');
    const e = encodePrompt(tok, buildPrompt([{ role: 'user', content: long }], 64));
    expect(e.ids.length).toBe(MAX_INPUT_LENGTH);
    expect(e.fullLength).toBeGreaterThan(MAX_INPUT_LENGTH);
    expect(e.truncated).toBe(true);
    expect(e.ids).toEqual(tok.encode(buildPrompt([{ role: 'user', content: long }], 64)).slice(0, 2048));
    expect(e.bounds).toEqual([{ start: 5, end: 69 }]);
  });

  it('cleans output as _decode_text: drops 0s, a leading BOS and a trailing EOS, strips', () => {
    const ids = tok.encode(' A red ball. ', { addBos: false });
    expect(cleanOutput(tok, [1, 0, ...ids, 0, 2])).toBe('A red ball.');
    expect(cleanOutput(tok, [...ids, 2, 2])).toBe(`${tok.decode([...ids, 2])}`.trim());
  });

  it('streams text that adds up to the full decode, holding back split UTF-8 bytes', () => {
    const text = 'A ball 🎈 and 世界, done.';
    const ids = tok.encode(text, { addBos: false });
    const parts: string[] = [];
    const s = new TextStreamer(tok, (d) => parts.push(d));
    for (const id of ids) s.push(id);
    expect(parts.join('')).toBe(tok.decode(ids));
    expect(parts.every((p) => !p.includes('\uFFFD'))).toBe(true);
  });
});
