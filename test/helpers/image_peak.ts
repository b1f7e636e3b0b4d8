// Child process of test/image_memory.test.ts. `make CASE FILE` writes one large synthetic image;
// `measure FILE` (a fresh process) reads it, decodes and preprocesses it, and prints JSON with this
// process's peak RSS before and after (so building the file does not count). Run as
//   node --import tsx test/helpers/image_peak.ts make CASE FILE
//   node --import tsx test/helpers/image_peak.ts measure FILE
// Cases are synthetic files made here (no fixture): headers with little or no entropy-coded data,
// which libjpeg-turbo (and so Pillow and this decoder) completes with zero coefficients, and PNGs
// compressed on the fly.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { decodeImage } from '../../src/image/decode.ts';
import { preprocess } from '../../src/image/preprocess.ts';
import { STD_HUFF } from '../../src/image/jpeg/tables.ts';

const seg = (marker: number, body: number[] | Uint8Array) => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 255, ...body];

/** A JPEG header (SOI, DQT, SOFn, DHT for DC table 0, SOS over all components), then `tail`. */
function jpeg(w: number, h: number, sof: 0xc0 | 0xc2, sampling: number[], tail: number[]): Uint8Array {
  const comps = sampling.flatMap((hv, i) => [i + 1, hv, 0]);
  const dht = [0x00, ...STD_HUFF.dc0.bits.subarray(1), ...STD_HUFF.dc0.vals];
  const sos = [sampling.length, ...sampling.flatMap((_, i) => [i + 1, 0x00]), 0, sof === 0xc2 ? 0 : 63, 0];
  return Uint8Array.from([
    0xff, 0xd8, ...seg(0xdb, [0, ...new Array(64).fill(1)]),
    ...seg(sof, [8, h >> 8, h & 255, w >> 8, w & 255, sampling.length, ...comps]),
    ...seg(0xc4, dht), ...seg(0xda, sos), ...tail,
  ]);
}

function png(w: number, h: number, colorType: number, channels: number): Uint8Array {
  const row = 1 + w * channels;
  const raw = Buffer.alloc(row * h); // filter 0, zero samples, except a ramp so the data is not trivial
  for (let y = 0; y < h; y++) for (let x = 0; x < Math.min(w * channels, 4096); x++) raw[y * row + 1 + x] = (x + y) & 255;
  const chunk = (type: string, data: Uint8Array) => {
    const b = Buffer.alloc(12 + data.length);
    b.writeUInt32BE(data.length, 0); b.write(type, 4, 'latin1'); b.set(data, 8); // CRC of IDAT/IEND is not checked
    return b;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = colorType;
  const head = chunk('IHDR', ihdr);
  let c = -1; // IHDR's CRC is checked
  for (const v of head.subarray(4, 21)) { c ^= v; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; }
  head.writeUInt32BE((c ^ -1) >>> 0, 21);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), head,
    chunk('IDAT', zlib.deflateSync(raw, { level: 1 })), chunk('IEND', new Uint8Array(0))]);
}

const EOI = [0xff, 0xd9];
const CASES: Record<string, () => Uint8Array> = {
  // issue 13: a 1.2 KB JPEG claiming 13000x13000 with no end: refused before allocating
  'jpeg-13000-claim-baseline': () => jpeg(13000, 13000, 0xc0, [0x22, 0x11, 0x11], new Array(1000).fill(0x55)),
  'jpeg-13000-claim-progressive': () => jpeg(13000, 13000, 0xc2, [0x11, 0x11, 0x11], new Array(1000).fill(0x55)),
  // decoded (every MCU from zero bits): the output and, for progressive, the coefficient buffer
  'jpeg-baseline-420': () => jpeg(6000, 6000, 0xc0, [0x22, 0x11, 0x11], EOI),
  'jpeg-progressive-444': () => jpeg(4000, 4000, 0xc2, [0x11, 0x11, 0x11], EOI),
  'png-rgb-6000': () => png(6000, 6000, 2, 3),
  // issue 13: 1 x 178,956,970 passed 2.9 GB; 1 x 20,000,000 takes the same path (weights per output pixel)
  'png-gray-1x20M': () => png(20_000_000, 1, 0, 1),
};

export const CASE_NAMES = Object.keys(CASES);

const [mode, a, b] = process.argv.slice(2);
if (mode === 'make') {
  const make = CASES[a];
  if (!make) throw new Error(`unknown case ${a}; cases: ${CASE_NAMES.join(', ')}`);
  fs.writeFileSync(b, make());
} else if (mode === 'measure') {
  const file = new Uint8Array(fs.readFileSync(a));
  const before = process.resourceUsage().maxRSS * 1024;
  let result: { width: number; height: number } | { error: string };
  try {
    const img = decodeImage(file, 'image');
    preprocess(img);
    result = { width: img.width, height: img.height };
  } catch (e) {
    result = { error: (e as Error).message };
  }
  const after = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ fileBytes: file.length, before, after, ...result }) + '\n');
}
