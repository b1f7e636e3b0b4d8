// A JPEG marker walk (ITU T.81 Annex B) that reads the frame header and finds the end of the data
// without decoding any pixel: it gives the size for the decompression-bomb check, the facts the
// colour conversion needs, and a clear error for truncated or unsupported files.
import { ImageError, checkImageSize } from './types.ts';

export interface JpegComponent { id: number; h: number; v: number }
export interface JpegInfo {
  width: number;
  height: number;
  sofMarker: number; // 0xC0 baseline, 0xC1 extended, 0xC2 progressive
  precision: number;
  components: JpegComponent[];
  jfif: boolean; // APP0 "JFIF\0" seen
  adobeTransform: number | null; // APP14 "Adobe" transform byte (0 none, 1 YCbCr, 2 YCCK), null if absent
  adobeTransformOffset: number | null; // byte offset of that transform flag in the file
}

const SOF_NAMES: Record<number, string> = {
  0xc3: 'lossless', 0xc5: 'differential sequential', 0xc6: 'differential progressive',
  0xc7: 'differential lossless', 0xc9: 'arithmetic-coded sequential', 0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless', 0xcd: 'differential arithmetic sequential',
  0xce: 'differential arithmetic progressive', 0xcf: 'differential arithmetic lossless',
};

export function readJpegInfo(bytes: Uint8Array, source: string): JpegInfo {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new ImageError(`${source}: not a JPEG file (no SOI marker)`);
  let info: JpegInfo | undefined;
  let jfif = false;
  let adobeTransform: number | null = null;
  let adobeTransformOffset: number | null = null;
  let scans = 0;
  let off = 2;
  for (;;) {
    // Markers may be preceded by any number of 0xFF fill bytes (B.1.1.2).
    if (off >= bytes.length) throw new ImageError(`${source}: truncated JPEG (file ends at byte ${off} before the EOI marker)`);
    if (bytes[off] !== 0xff) throw new ImageError(`${source}: corrupt JPEG (expected a marker at byte ${off}, found 0x${bytes[off].toString(16)})`);
    while (off < bytes.length && bytes[off] === 0xff) off++;
    if (off >= bytes.length) throw new ImageError(`${source}: truncated JPEG (file ends inside a marker)`);
    const marker = bytes[off++];
    if (marker === 0xd9) break; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM, RSTn: no length
    if (marker === 0xd8 || marker === 0x00) throw new ImageError(`${source}: corrupt JPEG (unexpected marker 0xFF${marker.toString(16)} at byte ${off - 2})`);
    if (off + 2 > bytes.length) throw new ImageError(`${source}: truncated JPEG (segment 0xFF${marker.toString(16).toUpperCase()} is cut off)`);
    const len = (bytes[off] << 8) | bytes[off + 1];
    if (len < 2) throw new ImageError(`${source}: corrupt JPEG (segment 0xFF${marker.toString(16).toUpperCase()} has length ${len})`);
    if (off + len > bytes.length) {
      throw new ImageError(`${source}: truncated JPEG (segment 0xFF${marker.toString(16).toUpperCase()} at byte ${off - 2} needs ${len} bytes, ${bytes.length - off} left)`);
    }
    const seg = bytes.subarray(off + 2, off + len);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (marker === 0xe0 && seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 5)) === 'JFIF\0') jfif = true;
    if (marker === 0xee && seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') {
      adobeTransform = seg[11];
      adobeTransformOffset = off + 2 + 11;
    }
    if (isSof) {
      if (info) throw new ImageError(`${source}: unsupported JPEG (more than one frame header)`);
      if (SOF_NAMES[marker]) throw new ImageError(`${source}: unsupported JPEG type: ${SOF_NAMES[marker]} (SOF 0xFF${marker.toString(16).toUpperCase()}); only baseline and progressive Huffman JPEGs are supported`);
      if (seg.length < 6) throw new ImageError(`${source}: corrupt JPEG (short frame header)`);
      const precision = seg[0];
      const height = (seg[1] << 8) | seg[2];
      const width = (seg[3] << 8) | seg[4];
      const n = seg[5];
      if (seg.length < 6 + 3 * n) throw new ImageError(`${source}: corrupt JPEG (frame header lists ${n} components but is ${seg.length + 2} bytes)`);
      if (precision !== 8) throw new ImageError(`${source}: unsupported JPEG sample precision ${precision} bits (only 8)`);
      if (n !== 1 && n !== 3 && n !== 4) throw new ImageError(`${source}: unsupported JPEG with ${n} colour components`);
      const components: JpegComponent[] = [];
      for (let i = 0; i < n; i++) {
        const hv = seg[7 + 3 * i];
        components.push({ id: seg[6 + 3 * i], h: hv >> 4, v: hv & 15 });
        if (!(hv >> 4) || !(hv & 15)) throw new ImageError(`${source}: corrupt JPEG (sampling factor 0 in component ${i})`);
      }
      // Refuse a zero-sized or bomb-sized frame before any entropy-coded data is decoded. A height of 0
      // means "defined later by a DNL marker", which libjpeg (and so PIL) does not support either.
      checkImageSize(width, height, 'JPEG', source);
      info = { width, height, sofMarker: marker, precision, components, jfif: false, adobeTransform: null, adobeTransformOffset: null };
    }
    off += len;
    if (marker === 0xda) {
      if (!info) throw new ImageError(`${source}: corrupt JPEG (scan before the frame header)`);
      scans++;
      // Skip entropy-coded data: 0xFF00 is a stuffed byte, 0xFFD0..D7 restart markers; any other 0xFFxx ends it.
      while (off + 1 < bytes.length && !(bytes[off] === 0xff && bytes[off + 1] !== 0 && !(bytes[off + 1] >= 0xd0 && bytes[off + 1] <= 0xd7))) off++;
      if (off + 1 >= bytes.length) throw new ImageError(`${source}: truncated JPEG (file ends inside scan data, no EOI marker)`);
    }
  }
  if (!info) throw new ImageError(`${source}: corrupt JPEG (no frame header before EOI)`);
  if (scans === 0) throw new ImageError(`${source}: corrupt JPEG (no scan data before EOI)`);
  return { ...info, jfif, adobeTransform, adobeTransformOffset };
}
