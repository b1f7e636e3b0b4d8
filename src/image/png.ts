// PNG decoding with the result of Pillow's `Image.open(f).convert('RGB')`.
//
// pngjs does the inflate/unfilter/de-interlace work; this file walks the chunks itself first so that
// (a) the size is checked from IHDR before any pixel is decoded, (b) every failure names the chunk, and
// (c) pngjs only sees the chunks Pillow uses for pixels (IHDR, PLTE, IDAT, IEND).
//
// Pillow 10.1.0 facts (src/PIL/PngImagePlugin.py `_MODES`, src/libImaging/Unpack.c, Convert.c):
//   gray 1/2/4 bit -> mode "1"/"L": values scaled by 255, 0x55, 0x11 (unpack1/unpackL2/unpackL4)
//   gray 16 bit    -> mode "I" (rawmode I;16B, the full 16-bit value); convert('RGB') is i2rgb, which
//                     CLIPS to [0,255] (v >= 255 -> 255), it does not rescale. (Pillow >= 10.3 opens it as
//                     "I;16"; I16_RGB clips the same way.)
//   gray+alpha 16  -> mode "RGBA" via "LA;16B": the high byte of gray; alpha dropped
//   RGB/RGBA 16    -> "RGB;16B"/"RGBA;16B": the high byte of each sample (unpackRGB16B takes in[0],in[2],in[4])
//   palette        -> p2rgb: palette[index] RGB; indices past the PLTE entries read the palette's zero fill
//                     (ImagingPaletteNew calloc's it), i.e. black
//   alpha / tRNS   -> dropped by convert('RGB'), never composited (rgba2rgb, la2rgb copy the colour bytes)
// pngjs would instead rescale 16-bit as round(v*255/65535) and zero the RGB of tRNS-keyed pixels, so we
// decode with `skipRescale`, drop tRNS, and do the conversion below.
// Pillow checks the CRC of every chunk before the first IDAT (ChunkStream.crc) but not of IDAT or later
// chunks; we do the same and tell pngjs not to check.
// We inflate the IDAT stream ourselves: pngjs 7.0.0's synchronous inflate (lib/sync-inflate.js) does not
// see zlib errors on current Node and returns uninitialised memory for corrupt data. pngjs then gets the
// checked scanlines re-wrapped in a stored (level 0) zlib stream, which costs a copy, not a compression.
import zlib from 'node:zlib';
import pngjs from 'pngjs';
import { ImageError, type RgbImage, checkImageSize } from './types.ts';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// (colorType -> bit depths) that Pillow's _MODES accepts.
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

export interface PngHeader { width: number; height: number; depth: number; colorType: number; interlace: number }

let crcTable: Int32Array | undefined;
function crc32(bytes: Uint8Array, start: number, end: number): number {
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

interface Chunk { type: string; data: Uint8Array }

/** Walks the chunk list up to IEND (or the end of the file), validating IHDR and pre-IDAT CRCs. */
function readChunks(bytes: Uint8Array, source: string): { header: PngHeader; chunks: Chunk[] } {
  for (let i = 0; i < 8; i++) {
    if (bytes[i] !== SIGNATURE[i]) throw new ImageError(`${source}: not a PNG file (bad signature)`);
  }
  const chunks: Chunk[] = [];
  let header: PngHeader | undefined;
  let seenIdat = false;
  let off = 8;
  while (off < bytes.length) {
    if (off + 8 > bytes.length) {
      throw new ImageError(`${source}: truncated PNG (chunk header at byte ${off} is cut off)`);
    }
    const length = u32(bytes, off);
    const type = String.fromCharCode(bytes[off + 4], bytes[off + 5], bytes[off + 6], bytes[off + 7]);
    if (!/^[A-Za-z]{4}$/.test(type) || length > 0x7fffffff) {
      throw new ImageError(`${source}: corrupt PNG (invalid chunk header at byte ${off})`);
    }
    const end = off + 12 + length;
    if (end > bytes.length) {
      throw new ImageError(
        `${source}: truncated PNG (chunk ${type} at byte ${off} needs ${length + 12} bytes, ${bytes.length - off} left)`,
      );
    }
    if (type === 'IDAT') seenIdat = true;
    if (!seenIdat && crc32(bytes, off + 4, off + 8 + length) !== u32(bytes, off + 8 + length)) {
      throw new ImageError(`${source}: corrupt PNG (CRC mismatch in chunk ${type} at byte ${off})`);
    }
    const data = bytes.subarray(off + 8, off + 8 + length);
    if (!header) {
      if (type !== 'IHDR' || length !== 13) throw new ImageError(`${source}: corrupt PNG (first chunk is not a 13-byte IHDR)`);
      header = { width: u32(data, 0), height: u32(data, 4), depth: data[8], colorType: data[9], interlace: data[12] };
      const ok = DEPTHS[header.colorType]?.includes(header.depth);
      if (!ok) {
        throw new ImageError(`${source}: unsupported PNG bit depth ${header.depth} for color type ${header.colorType}`);
      }
      if (data[10] !== 0 || data[11] !== 0 || header.interlace > 1) {
        throw new ImageError(`${source}: corrupt PNG (unknown compression/filter/interlace method in IHDR)`);
      }
      // Refuse before anything is inflated.
      checkImageSize(header.width, header.height, 'PNG', source);
    }
    chunks.push({ type, data });
    off = end;
    if (type === 'IEND') break;
  }
  if (!header) throw new ImageError(`${source}: truncated PNG (no IHDR chunk)`);
  return { header, chunks };
}

/** Reads width/height/depth/colour type from IHDR without decoding pixels. */
export function readPngHeader(bytes: Uint8Array, source: string): PngHeader {
  return readChunks(bytes, source).header;
}

function chunkBytes(type: string, data: Uint8Array): Uint8Array {
  // CRC left zero: pngjs runs with checkCRC: false (CRCs were checked above where Pillow checks them).
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  return out;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** Bytes of filtered scanline data the header implies (filter byte + packed samples per row, per pass). */
function scanlineBytes({ width, height, depth, colorType, interlace }: PngHeader): number {
  const passes = interlace ? ADAM7 : [[0, 0, 1, 1]];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((width - x0) / dx), h = Math.ceil((height - y0) / dy);
    if (w > 0 && h > 0) total += h * (1 + Math.ceil((w * CHANNELS[colorType] * depth) / 8));
  }
  return total;
}

/** Inflates the IDAT data and returns it as a stored zlib stream of exactly the needed length. */
function inflateScanlines(header: PngHeader, idat: Uint8Array[], source: string): Uint8Array {
  const need = scanlineBytes(header);
  let raw: Buffer;
  try {
    // Z_SYNC_FLUSH: like Pillow's ZipDecode, a stream that stops after the last scanline is fine.
    // Data beyond what the header implies is ignored (Pillow stops reading there); the output cap
    // keeps a tiny zlib bomb from inflating without bound.
    raw = zlib.inflateSync(Buffer.concat(idat), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: need + (1 << 20) });
  } catch (e) {
    throw new ImageError(`${source}: corrupt PNG image data (zlib: ${(e as Error).message})`);
  }
  if (raw.length < need) {
    throw new ImageError(`${source}: truncated PNG image data (${raw.length} of ${need} scanline bytes)`);
  }
  return zlib.deflateSync(raw.subarray(0, need), { level: 0 });
}

export function decodePng(bytes: Uint8Array, source: string): RgbImage {
  const { header, chunks } = readChunks(bytes, source);
  const { width, height, depth, colorType } = header;
  const idat = chunks.filter((c) => c.type === 'IDAT');
  if (idat.length === 0) throw new ImageError(`${source}: truncated PNG (no IDAT chunk)`);
  const parts: Uint8Array[] = [Uint8Array.from(SIGNATURE), chunkBytes('IHDR', chunks[0].data)];
  if (colorType === 3) {
    const plte = chunks.find((c) => c.type === 'PLTE');
    if (!plte || plte.data.length % 3 !== 0 || plte.data.length > 768) {
      throw new ImageError(`${source}: corrupt PNG (palette image without a valid PLTE chunk)`);
    }
    const full = new Uint8Array(768); // 256 entries, zero-filled like Pillow's palette
    full.set(plte.data);
    parts.push(chunkBytes('PLTE', full));
  }
  parts.push(chunkBytes('IDAT', inflateScanlines(header, idat.map((c) => c.data), source)));
  parts.push(chunkBytes('IEND', new Uint8Array(0)));

  let decoded: { data: Uint8Array | Uint16Array };
  try {
    decoded = pngjs.PNG.sync.read(Buffer.concat(parts), { skipRescale: true, checkCRC: false } as pngjs.ParserOptions) as
      unknown as { data: Uint8Array | Uint16Array };
  } catch (e) {
    throw new ImageError(`${source}: corrupt PNG image data (${(e as Error).message})`);
  }
  const rgba = decoded.data; // RGBA, gray replicated; Uint16Array when depth == 16 (skipRescale)
  const n = width * height;
  if (rgba.length !== n * 4) throw new ImageError(`${source}: corrupt PNG image data (decoded ${rgba.length / 4} of ${n} pixels)`);
  const out = new Uint8Array(n * 3);
  // pngjs value -> Pillow's 8-bit value, per the table at the top of this file.
  const clip16 = depth === 16 && colorType === 0; // mode I -> RGB clips
  const high16 = depth === 16 && colorType !== 0; // ;16B rawmodes keep the high byte
  const gain = depth < 8 && colorType !== 3 ? 255 / ((1 << depth) - 1) : 1; // 255, 0x55, 0x11: exact
  for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
    for (let c = 0; c < 3; c++) {
      const v = rgba[i + c];
      out[j + c] = clip16 ? (v > 255 ? 255 : v) : high16 ? v >> 8 : v * gain;
    }
  }
  return { width, height, data: out };
}
