// JPEG decoding = Pillow's Image.open(f).convert('RGB'), byte for byte, with Pillow's verdicts
// (docs/jpeg.md). Expected values:
//  - test/fixtures/images/expected.safetensors: Pillow's RGB for the committed fixtures (reference/image_cases.py);
//  - VERDICTS below: what Pillow 11.3.0 (libjpeg-turbo 3.1.1, x86-64 wheel) made of files this test
//    derives from the fixtures (sha256 of its RGB bytes, or its exception), recorded when this test was written;
//  - ../shared/jpeg (optional): third-party files with Pillow's output as PNG or its refusal.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage, ImageError } from '../src/image/decode.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { fixturesDir, hasShared, sharedDir } from './helpers/paths.ts';
import { named, shared, unmet } from './helpers/requires.ts';

const DIR = path.join(fixturesDir, 'images');
const read = (f: string) => new Uint8Array(fs.readFileSync(path.join(DIR, f)));
const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

function mismatches(a: Uint8Array, e: Uint8Array): string {
  let n = 0;
  const first: string[] = [];
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) {
      n++;
      if (first.length < 5) first.push(`[${i}] got ${a[i]} want ${e[i]}`);
    }
  }
  return n === 0 ? '' : `${n} samples differ: ${first.join(', ')}`;
}

/** The verdict our decoder gives, in the form the table below records Pillow's. */
function verdict(bytes: Uint8Array): string {
  try {
    return `ok ${sha256(decodeImage(bytes, 'case.jpg').data)}`;
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    expect(e.message.startsWith('case.jpg: ')).toBe(true);
    expect(e.message).not.toMatch(/\n/);
    return /truncated/.test(e.message) ? 'truncated' : 'refused';
  }
}

// --- byte surgery on fixture files ------------------------------------------------------------
function segmentAt(b: Uint8Array, marker: number): number {
  for (let o = 2; o < b.length;) {
    if (b[o + 1] === marker) return o;
    o += 2 + ((b[o + 2] << 8) | b[o + 3]);
  }
  throw new Error(`marker ${marker.toString(16)} not found`);
}
const sosEnd = (b: Uint8Array) => { const o = segmentAt(b, 0xda); return o + 2 + ((b[o + 2] << 8) | b[o + 3]); };
function dropSegments(b: Uint8Array, marker: number): Uint8Array {
  const parts: Uint8Array[] = [b.subarray(0, 2)];
  let o = 2;
  for (;;) {
    const m = b[o + 1], len = (b[o + 2] << 8) | b[o + 3];
    if (m !== marker) parts.push(b.subarray(o, o + 2 + len));
    o += 2 + len;
    if (m === 0xda) break;
  }
  parts.push(b.subarray(o));
  return Buffer.concat(parts);
}
const xorScanByte = (f: string, at: number) => {
  const b = read(f).slice(), e = sosEnd(b);
  b[e + Math.floor((b.length - 2 - e) * at)] ^= 0x55;
  return b;
};

describe('JPEG fixtures = Pillow convert("RGB"), bit-exact', () => {
  const expected = SafetensorsFile.open(path.join(DIR, 'expected.safetensors'));
  const jpgs = expected.keys().filter((k) => k.endsWith('.jpg'));
  it('covers 4:4:4, 4:2:0, 4:2:2, odd sizes, progressive, restart markers, gray, CMYK, Adobe RGB', () => {
    expect(jpgs.length).toBe(12);
  });
  it.each(jpgs)('%s', (f) => {
    const img = decodeImage(read(f), f);
    const [h, w] = expected.info(f).shape;
    expect([img.width, img.height]).toEqual([w, h]);
    expect(mismatches(img.data, expected.readUint8(f))).toBe('');
  });
});

// Pillow 11.3.0 on files derived from the fixtures. 'truncated' = OSError "image file is truncated",
// 'refused' = any other exception (broken data stream, cannot identify).
const VERDICTS: [string, () => Uint8Array, string][] = [
  // A file that only lacks EOI (or a few more bytes): libjpeg-turbo reads up to 57 bits ahead and suspends.
  ...(['pil_420.jpg', 'jpegjs_444.jpg', 'pil_420_progressive.jpg', 'pil_420_restart.jpg', 'pil_gray.jpg', 'pil_cmyk.jpg'] as const)
    .flatMap((f) => [2, 3, 8, 20].map((cut): [string, () => Uint8Array, string] => [`${f} minus ${cut} bytes`, () => read(f).subarray(0, read(f).length - cut), 'truncated'])),
  // Motion-JPEG style: no DHT, libjpeg-turbo installs the standard tables (same pixels as with them).
  ['jpegjs_444.jpg without DHT', () => dropSegments(read('jpegjs_444.jpg'), 0xc4), 'ok b06eac02c6d59b7df24c8f16c434c7bae8ad173a70934b2562dd30fec422398f'],
  // Damaged entropy-coded data is a warning for libjpeg-turbo: Pillow decodes it.
  ['pil_420.jpg scan byte at 30% ^ 0x55', () => xorScanByte('pil_420.jpg', 0.3), 'ok bc113cd6b7b124408ffe14ba7ce18a9c5ee67b2caceb6d5ef714df4240a898f0'],
  ['pil_420.jpg scan byte at 60% ^ 0x55', () => xorScanByte('pil_420.jpg', 0.6), 'ok 7f2f2f54218614436c7b26c40284b45ba0687cf3cc9a0895aa6d91e4df49b311'],
  ['pil_420.jpg scan byte at 90% ^ 0x55', () => xorScanByte('pil_420.jpg', 0.9), 'ok 1a2d6ccd90dc2e7dd29c9d0f23857d8713042a95dc09ff82bfcd38c2fe061580'],
  ['pil_420_progressive.jpg scan byte at 30% ^ 0x55', () => xorScanByte('pil_420_progressive.jpg', 0.3), 'ok f70a8294cb6ed7fa91600be8e9cdb021dfbe1b47fbcb501e15b28b25d1e244c4'],
  ['pil_420_progressive.jpg scan byte at 60% ^ 0x55', () => xorScanByte('pil_420_progressive.jpg', 0.6), 'ok c736922a554b9cf90e5feeea3b7c512153710919c96ff392368d66ef20baaef3'],
  // Progressive files cut after k of their 10 scans (EOI kept): libjpeg-turbo's block smoothing
  // estimates the missing low AC coefficients (and with DC only, smooths the DC) from neighbouring DCs.
  ...([[1, 'dfcd096c5bb9d6bad6d59584c0dfcd2911ba9901181b746229cb3568cf778d02'], [2, 'b088fa19d80f7a6caeaae8e83643b470b95231b7a8bb48b19a99d30f7ea51e1c'],
    [3, '71a12915aff137d35accdc5e41535acc03ef23849d9747beac1a194af4af86dd'], [4, '1f21288177e3c7c8cc8f36208f7dcc6d8c8bbf1d29f23a4510100481b6069cff'],
    [6, 'f67552666aff049b7e7533e22f3609b07cc487df8c3223d587531b3467125965'], [8, 'fa8a08009fa6a5b70b7cbc6bfd38ef57ebc0e398fd6e28a37e7d688cb86ede3c']] as const)
    .map(([keep, hash]): [string, () => Uint8Array, string] => [`pil_420_progressive.jpg with its first ${keep} scans`, () => {
      const b = read('pil_420_progressive.jpg'), sos: number[] = [];
      for (let i = 0; i < b.length - 1; i++) if (b[i] === 0xff && b[i + 1] === 0xda) sos.push(i);
      return Buffer.concat([b.subarray(0, sos[keep]), Uint8Array.of(0xff, 0xd9)]);
    }, `ok ${hash}`]),
  // A bad Huffman table is an error.
  ['jpegjs_444.jpg with a DHT count byte of 0xFF', () => { const b = read('jpegjs_444.jpg').slice(); b[segmentAt(b, 0xc4) + 5] = 0xff; return b; }, 'refused'],
  // A tables-only datastream (SOI DQT EOI) in front: libjpeg-turbo reads on to the next SOI.
  ['tables-only stream in front', () => {
    const b = read('jpegjs_444.jpg'), q = segmentAt(b, 0xdb), len = (b[q + 2] << 8) | b[q + 3];
    return Buffer.concat([Uint8Array.of(0xff, 0xd8), b.subarray(q, q + 2 + len), Uint8Array.of(0xff, 0xd9), b]);
  }, 'ok b06eac02c6d59b7df24c8f16c434c7bae8ad173a70934b2562dd30fec422398f'],
  // Four components without an Adobe marker: plain CMYK for libjpeg-turbo, inverted ("CMYK;I") by Pillow all the same.
  ['pil_cmyk.jpg without its APP14 marker', () => dropSegments(read('pil_cmyk.jpg'), 0xee), 'ok 58c44834c876594a40cac7021c3788d6759e6726feb0d5501c0d199661bb54a6'],
  // Hierarchical JPEG: Pillow opens it, libjpeg-turbo refuses it (JERR_SOF_UNSUPPORTED).
  ['SOF5 (differential sequential)', () => { const b = read('jpegjs_444.jpg').slice(); b[segmentAt(b, 0xc0) + 1] = 0xc5; return b; }, 'refused'],
  // SOF9 on Huffman data: decoded as arithmetic-coded garbage, as libjpeg-turbo does.
  ['SOF9 (arithmetic) over Huffman data', () => { const b = read('jpegjs_444.jpg').slice(); b[segmentAt(b, 0xc0) + 1] = 0xc9; return b; },
    'ok 0783428fa7325aa3129d3f62eb6a0bafdf0af7aeefe087ec47f89710c2877095'],
  // Pillow's own DQT parser: precision nibble 3 means 16-bit entries, too long for the segment.
  ['DQT precision nibble 3', () => { const b = read('jpegjs_444.jpg').slice(); b[segmentAt(b, 0xdb) + 4] = 0x30; return b; }, 'refused'],
  ['two SOI markers', () => Buffer.concat([read('jpegjs_444.jpg').subarray(0, 2), read('jpegjs_444.jpg')]), 'refused'],
  // No scan data at all before EOI: every MCU decodes from zero bits (uniform grey), no error.
  ['EOI right after the scan header', () => { const b = read('jpegjs_444.jpg'); return Buffer.concat([b.subarray(0, sosEnd(b)), Uint8Array.of(0xff, 0xd9)]); },
    'ok 5b8d4cbbff5871a3d3060736e4de2c22b3ea567464b77e509eff10db1c85bc64'],
];

describe('Pillow verdicts on damaged variants of the fixtures', () => {
  it.each(VERDICTS)('%s', (_name, make, want) => {
    expect(verdict(make())).toBe(want);
  });
});

const CORPUS = path.join(sharedDir, 'jpeg');
interface CorpusEntry { file: string; pillow: 'ok' | 'error'; expected?: string; error?: string; mode?: string }

const corpus = shared('jpeg', 'manifest.json');
describe.skipIf(unmet(corpus))(named('../shared/jpeg: third-party files', corpus), () => {
  it('every file Pillow opens decodes to its bytes; every file it refuses is refused', () => {
    const entries: CorpusEntry[] = JSON.parse(fs.readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')).images;
    const counts = { exact: 0, refused: 0 };
    const problems: string[] = [];
    for (const e of entries) {
      const bytes = new Uint8Array(fs.readFileSync(path.join(CORPUS, e.file)));
      let img;
      try {
        img = decodeImage(bytes, e.file);
      } catch (err) {
        if (!(err instanceof ImageError)) throw err;
        if (e.pillow === 'error' && err.message.startsWith(`${e.file}: `) && !err.message.includes('\n')) counts.refused++;
        else problems.push(`${e.file}: refused (${err.message}); Pillow: ${e.pillow}`);
        continue;
      }
      if (e.pillow === 'error') { problems.push(`${e.file}: decoded; Pillow: ${e.error}`); continue; }
      const want = decodeImage(new Uint8Array(fs.readFileSync(path.join(CORPUS, e.expected!))), e.expected!);
      const d = img.width === want.width && img.height === want.height ? mismatches(img.data, want.data) : 'size differs';
      if (d) problems.push(`${e.file} (${e.mode}): ${d}`);
      else counts.exact++;
    }
    expect(problems).toEqual([]);
    expect(counts.exact + counts.refused).toBe(entries.length);
  });

  // Pillow feeds libjpeg-turbo 64 KiB at a time, and the arithmetic decoder cannot wait for more
  // (JERR_CANT_SUSPEND): an arithmetic-coded scan that crosses a 64 KiB boundary of the file is
  // "broken data stream" for Pillow even though every byte is there (measured with Pillow 11.3.0).
  it('arithmetic-coded file: refused exactly when its scan data straddles a 64 KiB block', () => {
    const b = new Uint8Array(fs.readFileSync(path.join(CORPUS, 'libjpeg-turbo__testimages__testimgari.jpg')));
    const headerEnd = sosEnd(b);
    const withComment = (headerEndsAt: number) => {
      const n = headerEndsAt - headerEnd - 4;
      const com = new Uint8Array(4 + n).fill(0x78);
      com.set([0xff, 0xfe, (n + 2) >> 8, (n + 2) & 255]);
      return Buffer.concat([b.subarray(0, 2), com, b.subarray(2)]);
    };
    const plain = sha256(decodeImage(b, 'ari.jpg').data);
    expect(verdict(withComment(65536 - 5000))).toBe(`ok ${plain}`); // scan ends before 65536
    expect(verdict(withComment(65536 - 100))).toBe('refused'); // scan crosses 65536
    expect(verdict(withComment(65536 + 10))).toBe(`ok ${plain}`); // header read needed the second block
  });
});
