// Image decoding = Pillow's Image.open(f).convert('RGB'): PNG exact (JPEG: test/jpeg.test.ts),
// and every kind of bad input is an ImageError naming the file.
// Expected pixels: test/fixtures/images/expected.safetensors, written by reference/image_cases.py (Pillow).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeImage, detectFormat, ImageError, loadImage, MAX_DECODE_PIXELS } from '../src/image/decode.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { fixturesDir } from './helpers/paths.ts';

const DIR = path.join(fixturesDir, 'images');
const expected = SafetensorsFile.open(path.join(DIR, 'expected.safetensors'));
const read = (f: string) => new Uint8Array(fs.readFileSync(path.join(DIR, f)));

/** max |a-e|, mean |a-e|, count of differing samples, and the first mismatches for the failure message. */
function diff(a: Uint8Array, e: Uint8Array) {
  let max = 0, sum = 0, n = 0;
  const first: string[] = [];
  for (let i = 0; i < e.length; i++) {
    const d = Math.abs(a[i] - e[i]);
    if (d) { n++; if (first.length < 5) first.push(`[${i}] got ${a[i]} want ${e[i]}`); }
    sum += d;
    max = Math.max(max, d);
  }
  return { max, mean: sum / e.length, n, first: first.join(', ') };
}

// --- tiny PNG/JPEG byte builders for hand-made headers -------------------------------------------
function crc32(b: Uint8Array): number {
  let c = -1;
  for (const v of b) { c ^= v; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; }
  return (c ^ -1) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0); b.write(type, 4, 'latin1'); b.set(data, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}
function png(w: number, h: number, depth: number, colorType: number, raw?: Uint8Array): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = depth; ihdr[9] = colorType;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const idat = raw ? [chunk('IDAT', zlib.deflateSync(raw))] : [];
  return Buffer.concat([sig, chunk('IHDR', ihdr), ...idat, chunk('IEND', new Uint8Array(0))]);
}
/** Offset of the first 0xFF<marker> segment of a JPEG (walking the segments before the scan). */
function segmentAt(b: Uint8Array, marker: number): number {
  for (let o = 2; o < b.length;) {
    if (b[o + 1] === marker) return o;
    o += 2 + ((b[o + 2] << 8) | b[o + 3]);
  }
  throw new Error(`marker ${marker.toString(16)} not found`);
}
const expectImageError = (f: () => unknown, pattern: RegExp) => {
  let err: unknown;
  try { f(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(ImageError);
  expect((err as Error).message).toMatch(pattern);
};

describe('detectFormat (from the bytes, not the name)', () => {
  const ascii = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));
  it.each([
    ['png', read('rgb8.png')], ['jpeg', read('jpegjs_444.jpg')], ['gif', ascii('GIF87a....')], ['gif', ascii('GIF89a....')],
    ['webp', ascii('RIFF\x10\0\0\0WEBPVP8 ')], ['bmp', ascii('BM\x3a\0\0\0')], ['tiff', ascii('II*\0\x08\0')],
    ['tiff', ascii('MM\0*\0\0\0\x08')], ['unknown', ascii('hello world')], ['unknown', new Uint8Array(0)],
  ])('%s', (fmt, bytes) => expect(detectFormat(bytes)).toBe(fmt));
  it('ignores the file extension', () => {
    const tmp = path.join(os.tmpdir(), `minicpmv-img-${process.pid}.jpg`);
    fs.writeFileSync(tmp, read('rgb8.png'));
    try { expect(loadImage(tmp).data).toEqual(expected.readUint8('rgb8.png')); } finally { fs.unlinkSync(tmp); }
  });
});

describe('PNG = PIL convert("RGB"), bit-exact', () => {
  const pngs = expected.keys().filter((k) => k.endsWith('.png'));
  it('covers every color type and bit depth', () => expect(pngs.length).toBeGreaterThanOrEqual(30));
  it.each(pngs)('%s', (f) => {
    const img = loadImage(path.join(DIR, f));
    const [h, w] = expected.info(f).shape;
    expect([img.width, img.height]).toEqual([w, h]);
    const d = diff(img.data, expected.readUint8(f));
    expect(d.n, d.first).toBe(0);
  });
  // The PIL rules spelled out on hand-made pixels (Unpack.c / Convert.c @ Pillow 10.1.0).
  it('16-bit gray clips to 255 (mode I -> RGB), it does not rescale', () => {
    const raw = Uint8Array.from([0, 0x01, 0x02, 0x00, 0xfe, 0x00, 0xff]); // filter 0; 0x0102, 0x00FE, 0x00FF
    expect(Array.from(decodeImage(png(3, 1, 16, 0, raw)).data)).toEqual([255, 255, 255, 254, 254, 254, 255, 255, 255]);
  });
  it('16-bit RGB keeps the high byte of each sample', () => {
    const raw = Uint8Array.from([0, 0x12, 0xff, 0x34, 0x00, 0xab, 0xcd]);
    expect(Array.from(decodeImage(png(1, 1, 16, 2, raw)).data)).toEqual([0x12, 0x34, 0xab]);
  });
  it('RGBA drops alpha without compositing', () => {
    const raw = Uint8Array.from([0, 200, 100, 50, 0, 10, 20, 30, 128]);
    expect(Array.from(decodeImage(png(2, 1, 8, 6, raw)).data)).toEqual([200, 100, 50, 10, 20, 30]);
  });
  it('a file without IEND still decodes (Pillow stops after the image data)', () => {
    const full = read('rgb8.png');
    expect(decodeImage(full.subarray(0, full.length - 12)).data).toEqual(expected.readUint8('rgb8.png'));
  });
});

describe('bad input is an ImageError naming the file', () => {
  const tmp = (name: string, bytes: Uint8Array) => {
    const p = path.join(os.tmpdir(), `minicpmv-img-${process.pid}-${name}`);
    fs.writeFileSync(p, bytes);
    return p;
  };
  it('missing file', () => expectImageError(() => loadImage('/nonexistent/cat.png'), /image \/nonexistent\/cat\.png does not exist/));
  it('a directory', () => expectImageError(() => loadImage(os.tmpdir()), /is a directory/));
  it('empty file', () => {
    const p = tmp('empty.png', new Uint8Array(0));
    try { expectImageError(() => loadImage(p), new RegExp(`${p}: empty file`)); } finally { fs.unlinkSync(p); }
  });
  it.each([
    ['GIF', 'GIF89a\x01\0\x01\0'], ['WEBP', 'RIFF\x10\0\0\0WEBPVP8 '], ['BMP', 'BM\x3a\0\0\0\0\0'], ['TIFF', 'II*\0\x08\0\0\0'],
  ])('unsupported format %s is named', (name, head) => {
    expectImageError(() => decodeImage(Buffer.from(head, 'latin1'), 'x.img'), new RegExp(`x\\.img: unsupported image format ${name}`));
  });
  it('unknown bytes', () => expectImageError(() => decodeImage(Buffer.from('just some text'), 'notes.txt'), /notes\.txt: not a recognized image format/));

  it.each([20, 40, 0.5, -22])('truncated PNG (cut at %s)', (cut) => {
    const b = read('rgb16.png');
    const n = cut < 0 ? b.length + cut : cut < 1 ? Math.floor(b.length * cut) : cut;
    expectImageError(() => decodeImage(b.subarray(0, n), 'cut.png'), /^cut\.png: (image file is truncated|truncated PNG)/);
  });
  it('PNG with a bad header CRC', () => {
    const b = read('rgb8.png').slice();
    b[17] ^= 1; // inside IHDR's width
    expectImageError(() => decodeImage(b, 'crc.png'), /^crc\.png: broken PNG file \(bad header checksum in "IHDR"\)$/);
  });
  it('PNG with corrupt compressed data', () => {
    const b = read('gray8.png').slice();
    const idat = Buffer.from(b).indexOf('IDAT');
    b[idat + 4] = 0xff; b[idat + 5] = 0xff; // zlib header
    expectImageError(() => decodeImage(b, 'z.png'), /^z\.png: broken data stream when reading image file \(corrupt compressed data\)$/);
  });
  it('PNG with an unsupported bit depth', () => expectImageError(() => decodeImage(png(2, 2, 4, 2), 'd.png'), /^d\.png: cannot identify image file/));
  it('zero-sized PNG', () => expectImageError(() => decodeImage(png(0, 5, 8, 2), 'z.png'), /^z\.png: cannot identify image file \(IHDR declares a zero-sized image, 0x5\)$/));
  it('PNG decompression bomb is refused from IHDR, before any pixel data', () => {
    // No IDAT at all: the size check must fire first.
    expectImageError(() => decodeImage(png(20000, 10000, 8, 2), 'bomb.png'), /bomb\.png: PNG image is 20000x10000 = 200000000 pixels, above the limit of 178956970/);
    expectImageError(() => decodeImage(png(MAX_DECODE_PIXELS + 1, 1, 8, 0), 'b.png'), /above the limit/);
    // Exactly at the limit is allowed (PIL refuses only pixels > 2 * MAX_IMAGE_PIXELS): fails later, on the missing IDAT.
    expectImageError(() => decodeImage(png(MAX_DECODE_PIXELS / 10, 10, 8, 0), 'ok.png'), /^ok\.png: cannot load this image \(no image data before IEND\)$/);
  });

  // Pillow: "image file is truncated" for all of these, including a file that only lacks EOI.
  it.each([0.5, 0.9, -2])('truncated JPEG (cut at %s)', (cut) => {
    const b = read('pil_420_progressive.jpg');
    const n = cut < 0 ? b.length + cut : Math.floor(b.length * cut);
    expectImageError(() => decodeImage(b.subarray(0, n), 'cut.jpg'), /^cut\.jpg: image file is truncated/);
  });
  it('bytes after EOI / IEND are ignored (as by Pillow)', () => {
    const junk = Buffer.from('trailing bytes \xff\xd8\xff', 'latin1');
    for (const f of ['pil_420.jpg', 'rgb8.png']) {
      expect(decodeImage(Buffer.concat([read(f), junk])).data).toEqual(decodeImage(read(f)).data);
    }
  });
  it('a JPEG Pillow cannot identify is refused with its reason', () => {
    const b = read('jpegjs_444.jpg').slice();
    b[segmentAt(b, 0xdb) + 4] = 0x30; // DQT precision nibble 3: JpegImagePlugin's "bad quantization table marker"
    expectImageError(() => decodeImage(b, 'q.jpg'), /^q\.jpg: cannot identify image file \(bad quantization table marker\)$/);
  });
  it('zero-sized JPEG', () => {
    const b = read('jpegjs_444.jpg').slice();
    const sof = segmentAt(b, 0xc0);
    b[sof + 5] = 0; b[sof + 6] = 0; // height 0 (= DNL, which neither Pillow nor libjpeg supports)
    expectImageError(() => decodeImage(b, 'z.jpg'), /^z\.jpg: cannot identify image file \(.*zero size/);
  });
  it('JPEG decompression bomb is refused from SOF', () => {
    const b = read('jpegjs_444.jpg').slice();
    const sof = segmentAt(b, 0xc0);
    b.set([0xff, 0xff, 0xff, 0xff], sof + 5);
    expectImageError(() => decodeImage(b, 'bomb.jpg'), /bomb\.jpg: JPEG image is 65535x65535 = 4294836225 pixels, above the limit/);
  });
  it('JPEG kinds Pillow or libjpeg-turbo refuse are named', () => {
    const b = read('jpegjs_444.jpg').slice();
    b[segmentAt(b, 0xc0) + 1] = 0xc7;
    expectImageError(() => decodeImage(b, 'a.jpg'), /^a\.jpg: broken JPEG data stream: unsupported JPEG process: SOF type 0xC7$/);
    const c = read('jpegjs_444.jpg').slice();
    c[segmentAt(c, 0xc0) + 4] = 12;
    expectImageError(() => decodeImage(c, 'p.jpg'), /^p\.jpg: cannot identify image file \(cannot handle 12-bit layers\)$/);
    const d = read('jpegjs_444.jpg').slice();
    d[segmentAt(d, 0xc0) + 9] = 2; // two components
    expectImageError(() => decodeImage(d, 'k.jpg'), /^k\.jpg: cannot identify image file \(cannot handle 2-layer images\)$/);
  });
  it('random corruption and truncation: decodes or throws ImageError, nothing else', () => {
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const files = ['pal4_interlaced.png', 'rgba16.png', 'gray2.png', 'pil_420_progressive.jpg', 'jpegjs_444.jpg', 'pil_cmyk.jpg'];
    let errors = 0, ok = 0;
    for (const f of files) {
      for (let k = 0; k < 40; k++) {
        const b = read(f).slice();
        const bytes = k % 2 ? b.subarray(0, Math.floor(rnd() * b.length)) : b;
        if (k % 2 === 0) for (let j = 0; j < 3; j++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        try {
          const img = decodeImage(bytes, f);
          expect(img.data.length).toBe(img.width * img.height * 3);
          ok++;
        } catch (e) {
          if (!(e instanceof ImageError)) throw new Error(`${f} variant ${k}: unwrapped ${String(e)}`);
          expect((e as Error).message.startsWith(`${f}: `)).toBe(true);
          errors++;
        }
      }
    }
    expect(errors).toBeGreaterThan(100); // every truncation and most corruptions are caught
    expect(ok + errors).toBe(240);
  });
});
