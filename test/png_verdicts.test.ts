// PNG verdicts = Pillow's (src/image/png.ts header). Each case is built here the way the table below
// was measured: Pillow 11.3.0 on the same constructions (its zlib output differs in bytes, not in
// meaning), recorded as the sha256 of convert('RGB') bytes, or as a refusal.
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeImage, ImageError } from '../src/image/decode.ts';

const W = 5, H = 4;
const raw = new Uint8Array(H * (1 + W * 3));
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) raw[y * (1 + W * 3) + 1 + x * 3 + c] = (x * 40 + y * 17 + c * 90) % 256;

function crc32(b: Uint8Array): number {
  let c = -1;
  for (const v of b) { c ^= v; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; }
  return (c ^ -1) >>> 0;
}
const bytes = (s: string) => Buffer.from(s, 'latin1');
function chunk(type: string, data: Uint8Array): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0); b.write(type, 4, 'latin1'); b.set(data, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}
const be32 = (...v: number[]) => { const b = Buffer.alloc(4 * v.length); v.forEach((x, i) => b.writeUInt32BE(x, 4 * i)); return b; };
const SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IHDR = chunk('IHDR', Buffer.concat([be32(W, H), Buffer.from([8, 2, 0, 0, 0])]));
const END = chunk('IEND', new Uint8Array(0));
const Z = zlib.deflateSync(raw);
const half = Z.length >> 1;
const idat = (d: Uint8Array) => chunk('IDAT', d);
const png = (...parts: Uint8Array[]) => Buffer.concat([SIG, IHDR, ...parts]);
const fcTL = (seq: number) => { const b = Buffer.alloc(26); b.writeUInt32BE(seq, 0); b.writeUInt32BE(W, 4); b.writeUInt32BE(H, 8); b.writeUInt16BE(1, 20); b.writeUInt16BE(10, 22); return chunk('fcTL', b); };

const OK = 'ok 7fd0537144291469806e4b0a5361510d90f656eb3ba289e0f303026c67ff3f4d';
const CASES: [string, Uint8Array, string][] = [
  ['base', png(idat(Z), END), OK],
  // Pillow's image data is the first run of IDAT chunks: any other chunk ends it.
  ['IHDR between IDATs', png(idat(Z.subarray(0, half)), IHDR, idat(Z.subarray(half)), END), 'truncated'],
  ['tEXt between IDATs', png(idat(Z.subarray(0, half)), chunk('tEXt', bytes('k\0v')), idat(Z.subarray(half)), END), 'truncated'],
  ['IHDR after the image data', png(idat(Z), IHDR, END), OK],
  // Inflating stops at the last row: what follows in the stream is never read.
  ['1 MiB of extra rows in the zlib stream', png(idat(zlib.deflateSync(Buffer.concat([raw, new Uint8Array((1 << 20) | 100)]))), END), OK],
  ['garbage after the zlib stream', png(idat(Buffer.concat([Z, bytes('\x12\x34garbage')])), END), OK],
  ['zlib checksum missing', png(idat(Z.subarray(0, Z.length - 4)), END), OK],
  ['zlib stream cut before the last row', png(idat(Z.subarray(0, Z.length - 8)), END), 'truncated'],
  // Chunk handlers refuse before and after the image data.
  ['iCCP method 1 before IDAT', png(chunk('iCCP', bytes('icc\0\x01xyz')), idat(Z), END), 'refused'],
  ['iCCP method 1 after IDAT', png(idat(Z), chunk('iCCP', bytes('icc\0\x01xyz')), END), 'refused'],
  ['iCCP with bad zlib data (ignored)', png(chunk('iCCP', bytes('icc\0\x00xyz')), idat(Z), END), OK],
  ['acTL of 4 bytes', png(chunk('acTL', be32(1)), idat(Z), END), 'refused'],
  ['fcTL out of sequence', png(chunk('acTL', be32(1, 0)), fcTL(5), idat(Z), END), 'refused'],
  ['tRNS of 2 bytes on RGB', png(chunk('tRNS', Buffer.from([0, 1])), idat(Z), END), 'refused'],
  ['garbage after IEND', Buffer.concat([png(idat(Z), END), bytes('\xff\x00garbage')]), OK],
  ['chunk after IDAT running past the end', png(idat(Z), be32(1000), bytes('abCDxy')), 'refused'],
  ['filter type 7', png(idat(zlib.deflateSync(Buffer.concat([Buffer.from([7]), raw.subarray(1)]))), END), 'refused'],
];

describe('PNG verdicts = Pillow 11.3.0', () => {
  it.each(CASES)('%s', (_name, file, want) => {
    let got: string;
    try {
      got = `ok ${crypto.createHash('sha256').update(decodeImage(file, 'case.png').data).digest('hex')}`;
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      expect(e.message).toMatch(/^case\.png: [^\n]+$/);
      got = /image file is truncated/.test(e.message) ? 'truncated' : 'refused';
    }
    expect(got).toBe(want);
  });
});
