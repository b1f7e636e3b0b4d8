// PNG decoding with the result and the verdicts of Pillow's `Image.open(f).convert('RGB')`
// (Pillow 11.3.0 src/PIL/PngImagePlugin.py, src/libImaging/ZipDecode.c, Unpack.c, Convert.c).
//
// What Pillow does, and so what this file does:
//   open      the chunks up to the first IDAT (or fdAT) go through Pillow's chunk handlers, CRCs are
//             checked, and a handler's exception refuses the file (a short IHDR/sRGB/pHYs/acTL/fcTL,
//             an iCCP or zTXt with an unknown compression method, a gAMA/cHRM/tRNS that struct cannot
//             unpack, an fcTL out of sequence or outside the image, text chunks past 64 MiB). The last
//             IHDR before the image data gives size and mode; the compression-method byte is not
//             checked and any nonzero interlace byte means Adam7.
//   load      the image data is the first run of consecutive IDAT (or fdAT) chunks; any other chunk
//             ends it (load_read). The zlib stream is inflated only until the last row is complete:
//             bytes after that, valid or not, are never looked at (ZipDecode returns when y == ysize).
//             Rows missing when the run ends: "image file is truncated". IDAT CRCs are not checked.
//   load_end  the chunks after the image data (to IEND, or to the next fcTL of an animation) go
//             through the same handlers; an exception there still refuses the file, as does a chunk
//             that runs past the end of the file (ImageFile._safe_read).
//   convert   gray 1/2/4 bit -> mode "1"/"L": values scaled by 255, 0x55, 0x11 (unpack1/unpackL2/unpackL4);
//             gray 16 bit -> mode I;16, convert('RGB') CLIPS to [0,255], it does not rescale;
//             gray+alpha 16 -> RGBA via LA;16B: the high byte of gray; RGB/RGBA 16: the high byte of each
//             sample; palette -> p2rgb, indices past the PLTE entries read the zero fill (black);
//             alpha / tRNS are dropped by convert('RGB'), never composited.
// Memory: the compressed data, the inflated scanlines and the RGB output; no other full-size copy.
// Not modelled: APNG default images whose first fcTL covers only part of the canvas (docs/jpeg.md).
import zlib from 'node:zlib';
import { ImageError, type RgbImage, checkImageSize } from './types.ts';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// (colorType -> bit depths) of Pillow's _MODES.
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const MAX_TEXT_CHUNK = 1024 * 1024; // ImageFile.SAFEBLOCK
const MAX_TEXT_MEMORY = 64 * MAX_TEXT_CHUNK;

export interface PngHeader { width: number; height: number; depth: number; colorType: number; interlace: number }

let crcTable: Int32Array | undefined;
export function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const u32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const typeOf = (b: Uint8Array, o: number) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);

/** A refusal by Pillow; `truncated` ones are its "image file is truncated". */
class Refusal extends Error {}

interface Chunk { type: string; start: number; length: number } // start = offset of the data

/** The state PngStream keeps while its handlers run. */
class Stream {
  header: PngHeader | undefined;
  sawHeader = false;
  palette: Uint8Array | undefined;
  seqNum: number | null = null;
  nFrames: number | null = null;
  textMemory = 0;
  constructor(private readonly b: Uint8Array) {}

  /** ChunkStream.read: 8 header bytes, the type must be 4 word characters. */
  read(off: number): Chunk {
    if (off + 8 > this.b.length) throw new Refusal(`truncated PNG (chunk header at byte ${off} is cut off)`);
    const type = typeOf(this.b, off + 4);
    if (!/^\w{4}$/.test(type)) throw new Refusal(`broken PNG file (chunk ${JSON.stringify(type)} at byte ${off})`);
    return { type, start: off + 8, length: u32(this.b, off) };
  }

  /** ImageFile._safe_read */
  data(c: Chunk): Uint8Array {
    if (c.start + c.length > this.b.length) throw new Refusal(`truncated PNG (chunk ${c.type} at byte ${c.start - 8} runs past the end of the file)`);
    return this.b.subarray(c.start, c.start + c.length);
  }

  /** The chunk_* handler; returns 'image' for IDAT/fdAT (Pillow's EOFError). */
  handle(c: Chunk): 'image' | 'end' | void {
    const s = () => this.data(c);
    const need = (d: Uint8Array, n: number, what: string) => { if (d.length < n) throw new Refusal(`broken PNG file (${what})`); };
    switch (c.type) {
      case 'IHDR': {
        const d = s();
        if (d.length < 13) throw new Refusal('Truncated IHDR chunk');
        if (d[11]) throw new Refusal('unknown filter category');
        // The size always comes from the latest IHDR; the mode only when Pillow knows the combination.
        const known = DEPTHS[d[9]]?.includes(d[8]) ?? false;
        const prev = this.header;
        this.header = {
          width: u32(d, 0), height: u32(d, 4), depth: known || !prev ? d[8] : prev.depth,
          colorType: known || !prev ? d[9] : prev.colorType, interlace: d[12] ? 1 : 0,
        };
        this.sawHeader ||= known;
        return;
      }
      case 'IDAT': return 'image';
      case 'IEND': return 'end';
      case 'PLTE': { const d = s(); if (this.header?.colorType === 3 && this.sawHeader) this.palette = d; return; }
      case 'tRNS': {
        const d = s(), t = this.header?.colorType;
        if (this.sawHeader && t === 0) need(d, 2, 'tRNS chunk too short');
        if (this.sawHeader && t === 2) need(d, 6, 'tRNS chunk too short');
        return;
      }
      case 'iCCP': {
        const d = s();
        const i = d.indexOf(0);
        const method = i < 0 ? d[0] : d[i + 1]; // s[i + 1] with i = -1 is s[0]
        if (method === undefined) throw new Refusal('broken PNG file (iCCP chunk without a compression method)');
        if (method !== 0) throw new Refusal(`Unknown compression method ${method} in iCCP chunk`);
        this.textLike(d.subarray(i + 2), 'iCCP');
        return;
      }
      case 'gAMA': need(s(), 4, 'gAMA chunk too short'); return;
      case 'cHRM': if (s().length % 4) throw new Refusal('broken PNG file (cHRM chunk length is not a multiple of 4)'); return;
      case 'sRGB': if (s().length < 1) throw new Refusal('Truncated sRGB chunk'); return;
      case 'pHYs': if (s().length < 9) throw new Refusal('Truncated pHYs chunk'); return;
      case 'tEXt': {
        const d = s(), i = d.indexOf(0);
        if (i !== 0 && d.length) this.text(i < 0 ? 0 : d.length - i - 1);
        return;
      }
      case 'zTXt': {
        const d = s(), i = d.indexOf(0);
        const v = i < 0 ? new Uint8Array(0) : d.subarray(i + 1);
        const method = v.length ? v[0] : 0;
        if (method !== 0) throw new Refusal(`Unknown compression method ${method} in zTXt chunk`);
        const text = this.textLike(v.subarray(1), 'zTXt');
        if (i !== 0 && d.length) this.text(Math.max(0, text));
        return;
      }
      case 'iTXt': {
        const d = s(), i = d.indexOf(0);
        if (i < 0 || d.length - i - 1 < 2) return;
        const cf = d[i + 1], cm = d[i + 2], r = d.subarray(i + 3);
        const a = r.indexOf(0), b2 = a < 0 ? -1 : r.indexOf(0, a + 1);
        if (b2 < 0) return;
        let n = r.length - b2 - 1;
        if (cf !== 0) { if (cm !== 0) return; n = this.textLike(r.subarray(b2 + 1), 'iTXt'); if (n < 0) return; }
        this.text(n); // (approximately: Pillow counts decoded characters, here bytes)
        return;
      }
      case 'acTL': {
        const d = s();
        if (d.length < 8) throw new Refusal('APNG contains truncated acTL chunk');
        if (this.nFrames !== null) { this.nFrames = null; return; }
        const n = u32(d, 0);
        if (n !== 0 && n <= 0x80000000) this.nFrames = n;
        return;
      }
      case 'fcTL': {
        const d = s();
        if (d.length < 26) throw new Refusal('APNG contains truncated fcTL chunk');
        this.sequence(u32(d, 0));
        const w = u32(d, 4), h = u32(d, 8), px = u32(d, 12), py = u32(d, 16);
        const hd = this.header ?? { width: 0, height: 0 };
        if (px + w > hd.width || py + h > hd.height) throw new Refusal('APNG contains invalid frames');
        return;
      }
      case 'fdAT': {
        if (c.length < 4) throw new Refusal('APNG contains truncated fDAT chunk');
        if (c.start + 4 > this.b.length) throw new Refusal('Truncated File Read');
        this.sequence(u32(this.b, c.start));
        return 'image';
      }
      default:
        s(); // unknown chunk: read and skipped
    }
  }

  private sequence(seq: number): void {
    if ((this.seqNum === null && seq !== 0) || (this.seqNum !== null && this.seqNum !== seq - 1)) {
      throw new Refusal('APNG contains frame sequence errors');
    }
    this.seqNum = seq;
  }

  private text(n: number): void {
    this.textMemory += n;
    if (this.textMemory > MAX_TEXT_MEMORY) throw new Refusal(`Too much memory used in text chunks: ${this.textMemory}>MAX_TEXT_MEMORY`);
  }

  /** _safe_zlib_decompress: zlib errors are ignored, more than MAX_TEXT_CHUNK bytes is an error. -1 = zlib error. */
  private textLike(d: Uint8Array, what: string): number {
    let out: Buffer;
    try {
      out = zlib.inflateSync(d, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: MAX_TEXT_CHUNK });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new Refusal(`Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK (${what} chunk)`);
      }
      return -1;
    }
    return out.length;
  }
}

function wrap<T>(source: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Refusal) throw new ImageError(`${source}: ${e.message}`);
    throw e;
  }
}

/** PngImageFile._open: the chunks before the image data. */
function openPng(b: Uint8Array): { header: PngHeader; stream: Stream; first: Chunk | null } {
  for (let i = 0; i < 8; i++) if (b[i] !== SIGNATURE[i]) throw new Refusal('not a PNG file (bad signature)');
  const st = new Stream(b);
  let off = 8;
  for (;;) {
    const c = st.read(off);
    const r = st.handle(c);
    if (r === 'image' || r === 'end') {
      if (!st.header || !st.sawHeader) throw new Refusal('cannot identify image file (no IHDR with a mode Pillow supports)');
      if (st.header.width <= 0 || st.header.height <= 0) {
        throw new Refusal(`cannot identify image file (IHDR declares a zero-sized image, ${st.header.width}x${st.header.height})`);
      }
      return { header: st.header, stream: st, first: r === 'image' ? c : null };
    }
    // ChunkStream.crc for every chunk before the image data
    const end = c.start + c.length;
    if (end + 4 > b.length) throw new Refusal(`broken PNG file (incomplete checksum in ${JSON.stringify(c.type)})`);
    if (crc32(b, c.start - 4, end) !== u32(b, end)) throw new Refusal(`broken PNG file (bad header checksum in ${JSON.stringify(c.type)})`);
    off = end + 4;
  }
}

/** Bytes of filtered scanline data the header implies (filter byte + packed samples per row, per pass). */
function passes({ width, height, interlace }: PngHeader): number[][] {
  return (interlace ? ADAM7 : [[0, 0, 1, 1]]).filter(([x0, y0, dx, dy]) => width > x0 && height > y0)
    .map(([x0, y0, dx, dy]) => [x0, y0, dx, dy, Math.ceil((width - x0) / dx), Math.ceil((height - y0) / dy)]);
}
const rowBytes = (w: number, h: PngHeader) => 1 + Math.ceil((w * CHANNELS[h.colorType] * h.depth) / 8);

export function decodePng(bytes: Uint8Array, source: string): RgbImage {
  return wrap(source, () => {
    const { header, stream, first } = openPng(bytes);
    checkImageSize(header.width, header.height, 'PNG', source); // Image.open's decompression-bomb check
    if (!first) throw new Refusal('cannot load this image (no image data before IEND)');
    if (header.colorType === 3 && (!stream.palette || stream.palette.length % 3 !== 0 || stream.palette.length > 768)) {
      throw new Refusal('corrupt PNG (palette image without a valid PLTE chunk)');
    }
    const need = passes(header).reduce((n, [, , , , w, h]) => n + h * rowBytes(w, header), 0);
    // load_read: the run of IDAT/fdAT chunks that starts at the first one.
    const parts: Uint8Array[] = [];
    let off = first.start - 8;
    let last = first;
    for (;;) {
      let c: Chunk;
      try {
        c = off === first.start - 8 ? first : stream.read(off);
      } catch {
        break; // an unreadable chunk header ends the image data (missing rows are reported below)
      }
      if (c !== first && c.type !== 'IDAT' && c.type !== 'fdAT' && c.type !== 'DDAT') break;
      if (c !== first && c.type === 'fdAT') stream.handle(c);
      const skip = c.type === 'fdAT' ? 4 : 0;
      const end = Math.min(bytes.length, c.start + c.length);
      parts.push(bytes.subarray(Math.min(end, c.start + skip), end));
      last = c;
      off = c.start + c.length + 4;
      if (off + 8 > bytes.length) break;
    }
    const raw = inflateRows(parts, need);
    const rgb = unfilterToRgb(raw, header, stream.palette);
    loadEnd(bytes, stream, last);
    return { width: header.width, height: header.height, data: rgb };
  });
}

/**
 * The first `need` bytes of the zlib stream, as ZipDecode sees them: data after the last row is never
 * inflated, so neither its length nor its errors matter.
 */
function inflateRows(parts: Uint8Array[], need: number): Uint8Array {
  const data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  // One output buffer big enough for everything we accept: Node then returns it without the
  // concatenation copy it makes when the output spans several chunks (a second full-size buffer).
  const opts = (limit: number) => ({ finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: limit, chunkSize: limit + 64 });
  const tryInflate = (n: number): Buffer | 'error' | 'big' => {
    try {
      return zlib.inflateSync(data.subarray(0, n), opts(need + (1 << 20)));
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'big' : 'error';
    }
  };
  let out = tryInflate(data.length);
  if (out === 'big' || out === 'error') {
    // More output than the rows, or an error somewhere: find a prefix of the compressed data that
    // yields every row without error (if the error comes before the last row, none does).
    let lo = 0, hi = data.length;
    out = 'error';
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      const r = tryInflate(mid);
      if (r === 'big' || r === 'error') hi = mid;
      else if (r.length < need) lo = mid;
      else { out = r; break; }
    }
    if (out === 'error') {
      const r = tryInflate(hi);
      if (r !== 'big' && r !== 'error' && r.length >= need) out = r;
    }
    if (out === 'error') {
      const r = tryInflate(lo + 1);
      throw new Refusal(r === 'error' ? 'broken data stream when reading image file (corrupt compressed data)' : 'image file is truncated (the image data ends before the last row)');
    }
  }
  if (out.length < need) throw new Refusal(`image file is truncated (${out.length} of ${need} scanline bytes in the image data)`);
  return out.subarray(0, need);
}

/** PngImageFile.load_end: the chunks after the image data still go through the handlers. */
function loadEnd(b: Uint8Array, stream: Stream, last: Chunk): void {
  const animated = (stream.nFrames ?? 1) > 1;
  let off = last.start + last.length + 4;
  for (;;) {
    let c: Chunk;
    try {
      c = stream.read(off);
    } catch {
      return; // struct.error / SyntaxError while reading a chunk header: load_end stops
    }
    if (c.type === 'IEND') return;
    if (c.type === 'fcTL' && animated) return;
    const r = stream.handle(c);
    if (r === 'image') stream.data({ ...c, start: c.start + (c.type === 'fdAT' ? 4 : 0), length: c.length - (c.type === 'fdAT' ? 4 : 0) });
    off = c.start + c.length + 4;
  }
}

/** Reverses the scanline filters in place and writes Pillow's convert('RGB') pixels. */
function unfilterToRgb(raw: Uint8Array, h: PngHeader, palette: Uint8Array | undefined): Uint8Array {
  const { width, depth, colorType } = h;
  const ch = CHANNELS[colorType];
  const bpp = Math.max(1, (ch * depth) >> 3);
  const out = new Uint8Array(width * h.height * 3);
  const pal = new Uint8Array(768);
  if (palette) pal.set(palette);
  let pos = 0;
  for (const [x0, y0, dx, dy, pw, ph] of passes(h)) {
    const rb = rowBytes(pw, h) - 1;
    let prev = -1;
    for (let r = 0; r < ph; r++) {
      const f = raw[pos], row = pos + 1;
      if (f > 4) throw new Refusal(`broken data stream when reading image file (unknown PNG filter type ${f})`);
      unfilterRow(raw, row, prev, rb, bpp, f);
      writeRow(raw, row, out, width, (y0 + r * dy) * width, x0, dx, pw, depth, colorType, pal);
      prev = row;
      pos = row + rb;
    }
  }
  return out;
}

function unfilterRow(d: Uint8Array, row: number, prev: number, n: number, bpp: number, f: number): void {
  switch (f) {
    case 1: for (let i = bpp; i < n; i++) d[row + i] = d[row + i] + d[row + i - bpp]; break;
    case 2: if (prev >= 0) for (let i = 0; i < n; i++) d[row + i] = d[row + i] + d[prev + i]; break;
    case 3:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? d[row + i - bpp] : 0, b = prev >= 0 ? d[prev + i] : 0;
        d[row + i] = d[row + i] + ((a + b) >> 1);
      }
      break;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? d[row + i - bpp] : 0, b = prev >= 0 ? d[prev + i] : 0, c = i >= bpp && prev >= 0 ? d[prev + i - bpp] : 0;
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        d[row + i] = d[row + i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      break;
  }
}

function writeRow(d: Uint8Array, row: number, out: Uint8Array, width: number, base: number, x0: number, dx: number,
  n: number, depth: number, colorType: number, pal: Uint8Array): void {
  for (let i = 0; i < n; i++) {
    const o = (base + x0 + i * dx) * 3;
    let r: number, g: number, b: number;
    if (depth < 8) {
      const per = 8 / depth, bit = (i % per) * depth, v = (d[row + Math.floor(i / per)] >> (8 - depth - bit)) & ((1 << depth) - 1);
      if (colorType === 3) { r = pal[v * 3]; g = pal[v * 3 + 1]; b = pal[v * 3 + 2]; }
      else r = g = b = v * (255 / ((1 << depth) - 1)); // 255, 0x55, 0x11: exact
    } else if (depth === 8) {
      const p = row + i * CHANNELS[colorType];
      if (colorType === 0 || colorType === 4) r = g = b = d[p];
      else if (colorType === 3) { const v = d[p]; r = pal[v * 3]; g = pal[v * 3 + 1]; b = pal[v * 3 + 2]; }
      else { r = d[p]; g = d[p + 1]; b = d[p + 2]; }
    } else {
      const p = row + i * CHANNELS[colorType] * 2;
      if (colorType === 0) { const v = (d[p] << 8) | d[p + 1]; r = g = b = v > 255 ? 255 : v; } // mode I;16 -> RGB clips
      else if (colorType === 4) r = g = b = d[p]; // LA;16B: high byte
      else { r = d[p]; g = d[p + 2]; b = d[p + 4]; } // RGB;16B / RGBA;16B: high bytes
    }
    out[o] = r; out[o + 1] = g; out[o + 2] = b;
  }
}
