// What `Image.open(f)` decides for a JPEG before any pixel is decoded: Pillow's own marker walk in
// src/PIL/JpegImagePlugin.py (JpegImageFile._open and its marker handlers, Pillow 11.3.0), which
// gives the mode (from the layer count of the last SOF before the first SOS) and the size, and which
// refuses ("cannot identify image file") on the Python exceptions it maps to SyntaxError: a marker
// Pillow does not know, a frame header that is too short or not 8-bit, 2 or 5+ layers, a short
// JFIF/Adobe/ICC segment, a bad DQT, or no frame header before the scan. A segment longer than the
// file raises "Truncated File Read" (ImageFile._safe_read).
//
// Not reproduced: Pillow also reads EXIF (for DPI) and the MPF index (MPO detection) at open time;
// the exceptions those parsers may raise on malformed metadata are not modelled (docs/jpeg.md).

export type PillowMode = 'L' | 'RGB' | 'CMYK';
export interface PillowJpegHeader { mode: PillowMode; width: number; height: number }

/** Image.open refused the file; `message` is Pillow's reason. */
export class PillowOpenError extends Error {}

const unidentified = (why: string) => new PillowOpenError(`cannot identify image file (${why})`);

export function pillowOpenJpeg(b: Uint8Array): PillowJpegHeader {
  if (!(b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff)) throw unidentified('not a JPEG file');
  let pos = 3;
  let mode: PillowMode | '' = '';
  let width = 0, height = 0;
  let icclist: Uint8Array[] = [];
  const read = (n: number) => { const s = b.subarray(pos, Math.min(b.length, pos + n)); pos += s.length; return s; };
  /** i16(self.fp.read(2)) - 2: struct.error when the file ends. */
  const segLength = () => {
    const s = read(2);
    if (s.length < 2) throw unidentified('file ends inside a marker length');
    return ((s[0] << 8) | s[1]) - 2;
  };
  /** ImageFile._safe_read */
  const safeRead = (n: number) => {
    if (n <= 0) return new Uint8Array(0);
    const s = read(n);
    if (s.length < n) throw new PillowOpenError('Truncated File Read (a marker segment runs past the end of the file)');
    return s;
  };
  const startsWith = (s: Uint8Array, text: string) => s.length >= text.length && [...text].every((ch, i) => s[i] === ch.charCodeAt(0));

  let cur = 0xff; // s[0]
  for (;;) {
    if (cur !== 0xff) {
      const s = read(1);
      if (s.length === 0) throw unidentified('no start-of-scan marker before the end of the file');
      cur = s[0];
      continue;
    }
    const s = read(1);
    if (s.length === 0) throw unidentified('file ends inside a marker');
    const m = 0xff00 | s[0];
    const code = m & 0xff;
    if (m === 0xffff) { cur = 0xff; continue; } // padding
    if (m === 0xff00) { const t = read(1); if (t.length === 0) throw unidentified('no start-of-scan marker before the end of the file'); cur = t[0]; continue; }
    const known = code >= 0xc0 && code !== 0xff;
    if (!known) throw unidentified(`no marker found (0xFF${hex2(code)})`);
    const isSof = (code >= 0xc0 && code <= 0xcf && code !== 0xc4 && code !== 0xc8 && code !== 0xcc) || code === 0xde;
    const isSkip = code === 0xc4 || code === 0xcc || code === 0xda || code === 0xdc || code === 0xdd || code === 0xdf;
    if (isSof) {
      const seg = safeRead(segLength());
      if (seg.length < 5) throw unidentified('frame header too short');
      height = (seg[1] << 8) | seg[2];
      width = (seg[3] << 8) | seg[4];
      if (seg[0] !== 8) throw unidentified(`cannot handle ${seg[0]}-bit layers`);
      if (seg.length < 6) throw unidentified('frame header too short');
      const layers = seg[5];
      if (layers === 1) mode = 'L';
      else if (layers === 3) mode = 'RGB';
      else if (layers === 4) mode = 'CMYK';
      else throw unidentified(`cannot handle ${layers}-layer images`);
      if (icclist.length) {
        icclist.sort(compareBytes);
        if (icclist[0].length < 14) throw unidentified('ICC profile marker too short');
        icclist = [];
      }
      if ((seg.length - 6) % 3 !== 0 && seg.length > 6) throw unidentified('frame header has a partial component entry');
    } else if (code === 0xdb) {
      let seg = safeRead(segLength());
      while (seg.length) {
        const qtLength = 1 + (seg[0] >> 4 === 0 ? 1 : 2) * 64;
        if (seg.length < qtLength) throw unidentified('bad quantization table marker');
        seg = seg.subarray(qtLength);
      }
    } else if (code >= 0xe0 && code <= 0xef) {
      const seg = safeRead(segLength());
      if (code === 0xe0 && startsWith(seg, 'JFIF') && seg.length < 7) throw unidentified('JFIF marker too short');
      if (code === 0xe2 && startsWith(seg, 'ICC_PROFILE\0')) icclist.push(seg);
      if (code === 0xed && startsWith(seg, 'Photoshop 3.0\0')) photoshopBlocks(seg);
      if (code === 0xee && startsWith(seg, 'Adobe') && seg.length < 7) throw unidentified('Adobe marker too short');
    } else if (code === 0xfe || isSkip) {
      safeRead(segLength());
    } // else SOI, EOI, RSTn, JPG, JPGn: no handler
    if (code === 0xda) break; // start of scan: Pillow's header parsing ends here
    const t = read(1);
    if (t.length === 0) throw unidentified('no start-of-scan marker before the end of the file');
    cur = t[0];
  }
  if (!mode || width <= 0 || height <= 0) throw unidentified('not identified by this driver (no frame header or zero size)');
  return { mode, width, height };
}

/** The 8BIM resource loop of the APP13 handler: struct.error ends it, IndexError (a name length byte
 *  past the end) escapes and makes the file unidentifiable. */
function photoshopBlocks(s: Uint8Array): void {
  let offset = 14;
  while (offset + 4 <= s.length && s[offset] === 0x38 && s[offset + 1] === 0x42 && s[offset + 2] === 0x49 && s[offset + 3] === 0x4d) {
    offset += 4;
    if (offset + 2 > s.length) return;
    const code = (s[offset] << 8) | s[offset + 1];
    offset += 2;
    if (offset >= s.length) throw unidentified('Photoshop resource block cut short');
    offset += 1 + s[offset];
    offset += offset & 1;
    if (offset + 4 > s.length) return;
    const size = ((s[offset] << 24) | (s[offset + 1] << 16) | (s[offset + 2] << 8) | s[offset + 3]) >>> 0;
    offset += 4;
    if (code === 0x03ed && Math.min(size, s.length - offset) < 14) return; // ResolutionInfo too short: struct.error
    offset += size;
    offset += offset & 1;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function hex2(v: number): string {
  return v.toString(16).toUpperCase().padStart(2, '0');
}
