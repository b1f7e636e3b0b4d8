// Huffman decoding tables (libjpeg-turbo src/jdhuff.c jpeg_make_d_derived_tbl): validation of a DHT
// table and the 8-bit lookahead / maxcode / valoffset arrays the bit reader uses.
import type { HuffSpec } from './tables.ts';
import { JpegStop } from './errors.ts';

const corrupt = (msg: string) => new JpegStop('corrupt', msg);

export interface Derived { lookup: Int32Array; maxcode: Int32Array; valoffset: Int32Array; huffval: Uint8Array }

/** jdhuff.c jpeg_make_d_derived_tbl: validates a table and builds the 8-bit lookahead and maxcode arrays. */
export function makeDerived(spec: HuffSpec, isDC: boolean): Derived {
  const huffsize: number[] = [], huffcode: number[] = [];
  for (let l = 1; l <= 16; l++) {
    const n = spec.bits[l];
    if (huffsize.length + n > 256) throw corrupt('bogus Huffman table definition');
    for (let i = 0; i < n; i++) huffsize.push(l);
  }
  let code = 0, si = huffsize[0] ?? 0, p = 0;
  while (p < huffsize.length) {
    while (huffsize[p] === si) { huffcode[p++] = code; code++; }
    if (code >= 2 ** si) throw corrupt('bogus Huffman table definition');
    code *= 2;
    si++;
  }
  const maxcode = new Int32Array(18), valoffset = new Int32Array(18);
  p = 0;
  for (let l = 1; l <= 16; l++) {
    if (spec.bits[l]) {
      valoffset[l] = p - huffcode[p];
      p += spec.bits[l];
      maxcode[l] = huffcode[p - 1];
    } else maxcode[l] = -1;
  }
  maxcode[17] = 0xfffff; // ensures the bit-by-bit decode terminates
  const lookup = new Int32Array(256).fill(9 << 8);
  p = 0;
  for (let l = 1; l <= 8; l++) {
    for (let i = 1; i <= spec.bits[l]; i++, p++) {
      let look = huffcode[p] << (8 - l);
      for (let c = 1 << (8 - l); c > 0; c--) lookup[look++] = (l << 8) | spec.vals[p];
    }
  }
  if (isDC) for (let i = 0; i < huffsize.length; i++) if (spec.vals[i] > 15) throw corrupt('bogus Huffman table definition');
  const huffval = new Uint8Array(256);
  huffval.set(spec.vals.subarray(0, 256));
  return { lookup, maxcode, valoffset, huffval };
}


