// Block smoothing of progressive JPEGs whose low AC coefficients are not final (libjpeg-turbo 3.x
// src/jdcoefct.c smoothing_ok and decompress_smooth_data, do_block_smoothing = TRUE as Pillow leaves it):
// a missing coefficient among the first nine is estimated from the DC values of the 5x5 neighbouring
// blocks; when no AC data at all is known, the DC itself is smoothed. Complete files never get here.
import type { Component } from './decoder.ts';
import { idctIslow as importedIdct } from './idct.ts';

const idctIslow = importedIdct; // a module constant: called per block

/**
 * smoothing_ok: block smoothing is used when some of the first AC coefficients are not final.
 * Returns coef_bits_latch ([2 * ncomp][10]: current and previous-scan precision), or null for no smoothing.
 */
export function smoothingLatch(comps: Component[], cb: Int32Array, inputScanNumber: number): Int32Array | null {
  const n = comps.length;
  const latch = new Int32Array(2 * n * 10);
  let useful = false;
  for (const c of comps) {
    const q = c.quant;
    if (!q) return null;
    if (q[0] === 0 || q[1] === 0 || q[8] === 0 || q[16] === 0 || q[9] === 0 || q[2] === 0 || q[3] === 0 ||
        q[10] === 0 || q[17] === 0 || q[24] === 0) return null;
    const cur = c.index * 64, prev = (c.index + n) * 64;
    if (cb[cur] < 0) return null;
    latch[c.index * 10] = cb[cur];
    for (let k = 1; k < 10; k++) {
      latch[(c.index + n) * 10 + k] = inputScanNumber > 1 ? cb[prev + k] : -1;
      latch[c.index * 10 + k] = cb[cur + k];
      if (cb[cur + k] !== 0) useful = true;
    }
  }
  return useful ? latch : null;
}

const smoothWs = new Int16Array(64);

/**
 * decompress_smooth_data for one component of one iMCU row (the 5x5 DC-neighbourhood estimates).
 * Rows after lastGoodIMCURow (the last scan ran out of data there) use the previous scan's precision.
 */
export function smoothRow(c: Component, row: number, blockRows: number, plane: Uint8Array, stride: number,
  latch: Int32Array, ncomp: number, lastGoodIMCURow: number, totalIMCURows: number): void {
  {
    const n = ncomp;
    const bitsOff = row > lastGoodIMCURow ? (c.index + n) * 10 : c.index * 10;
    const cb = (k: number) => latch[bitsOff + k];
    const changeDc = cb(1) === -1 && cb(2) === -1 && cb(3) === -1 && cb(4) === -1 && cb(5) === -1 &&
      cb(6) === -1 && cb(7) === -1 && cb(8) === -1 && cb(9) === -1;
    const q = c.quant!;
    // quantval is UINT16 here (not the int16 of the IDCT table)
    const Q = (i: number) => q[i] & 0xffff;
    const Q00 = Q(0), Q01 = Q(1), Q10 = Q(8), Q20 = Q(16), Q11 = Q(9), Q02 = Q(2);
    const Q03 = changeDc ? Q(3) : 0, Q12 = changeDc ? Q(10) : 0, Q21 = changeDc ? Q(17) : 0, Q30 = changeDc ? Q(24) : 0;
    const coef = c.coef!, bw = c.blocksWide, ws = smoothWs;
    const imageBlockRows = blockRows * totalIMCURows;
    const last = c.widthInBlocks - 1;
    const est = (num: number, Qk: number, Al: number) => {
      // pred = ((Qk << 7) + |num|) / (Qk << 8), clipped to 2^Al - 1 when Al > 0, with num's sign
      let pred = Math.trunc((Qk * 128 + Math.abs(num)) / (Qk * 256));
      if (Al > 0 && pred >= 1 << Al) pred = (1 << Al) - 1;
      return num >= 0 ? pred : -pred;
    };
    for (let br = 0; br < blockRows; br++) {
      const ibr = row * blockRows + br;
      const cur = row * c.v + br; // true block row of this block
      const rowAt = (r: number) => r * bw * 64;
      const curRow = rowAt(cur);
      const prevRow = ibr > 0 ? rowAt(cur - 1) : curRow;
      const prev2Row = ibr > 1 ? rowAt(cur - 2) : prevRow;
      const nextRow = ibr < imageBlockRows - 1 ? rowAt(cur + 1) : curRow;
      const next2Row = ibr < imageBlockRows - 2 ? rowAt(cur + 2) : nextRow;
      const dcAt = (r: number, b: number) => coef[r + b * 64];
      let DC01 = dcAt(prev2Row, 0), DC02 = DC01, DC03 = DC01, DC04 = DC01, DC05 = DC01;
      let DC06 = dcAt(prevRow, 0), DC07 = DC06, DC08 = DC06, DC09 = DC06, DC10 = DC06;
      let DC11 = dcAt(curRow, 0), DC12 = DC11, DC13 = DC11, DC14 = DC11, DC15 = DC11;
      let DC16 = dcAt(nextRow, 0), DC17 = DC16, DC18 = DC16, DC19 = DC16, DC20 = DC16;
      let DC21 = dcAt(next2Row, 0), DC22 = DC21, DC23 = DC21, DC24 = DC21, DC25 = DC21;
      for (let b = 0; b <= last; b++) {
        ws.set(coef.subarray(curRow + b * 64, curRow + b * 64 + 64));
        if (b === 0 && b < last) {
          DC04 = DC05 = dcAt(prev2Row, 1); DC09 = DC10 = dcAt(prevRow, 1); DC14 = DC15 = dcAt(curRow, 1);
          DC19 = DC20 = dcAt(nextRow, 1); DC24 = DC25 = dcAt(next2Row, 1);
        }
        if (b + 1 < last) {
          DC05 = dcAt(prev2Row, b + 2); DC10 = dcAt(prevRow, b + 2); DC15 = dcAt(curRow, b + 2);
          DC20 = dcAt(nextRow, b + 2); DC25 = dcAt(next2Row, b + 2);
        }
        let Al: number;
        if ((Al = cb(1)) !== 0 && ws[1] === 0) {
          const num = Q00 * (changeDc
            ? -DC01 - DC02 + DC04 + DC05 - 3 * DC06 + 13 * DC07 - 13 * DC09 + 3 * DC10 - 3 * DC11 + 38 * DC12 - 38 * DC14 +
              3 * DC15 - 3 * DC16 + 13 * DC17 - 13 * DC19 + 3 * DC20 - DC21 - DC22 + DC24 + DC25
            : -7 * DC11 + 50 * DC12 - 50 * DC14 + 7 * DC15);
          ws[1] = est(num, Q01, Al);
        }
        if ((Al = cb(2)) !== 0 && ws[8] === 0) {
          const num = Q00 * (changeDc
            ? -DC01 - 3 * DC02 - 3 * DC03 - 3 * DC04 - DC05 - DC06 + 13 * DC07 + 38 * DC08 + 13 * DC09 - DC10 + DC16 -
              13 * DC17 - 38 * DC18 - 13 * DC19 + DC20 + DC21 + 3 * DC22 + 3 * DC23 + 3 * DC24 + DC25
            : -7 * DC03 + 50 * DC08 - 50 * DC18 + 7 * DC23);
          ws[8] = est(num, Q10, Al);
        }
        if ((Al = cb(3)) !== 0 && ws[16] === 0) {
          const num = Q00 * (changeDc
            ? DC03 + 2 * DC07 + 7 * DC08 + 2 * DC09 - 5 * DC12 - 14 * DC13 - 5 * DC14 + 2 * DC17 + 7 * DC18 + 2 * DC19 + DC23
            : -DC03 + 13 * DC08 - 24 * DC13 + 13 * DC18 - DC23);
          ws[16] = est(num, Q20, Al);
        }
        if ((Al = cb(4)) !== 0 && ws[9] === 0) {
          const num = Q00 * (changeDc
            ? -DC01 + DC05 + 9 * DC07 - 9 * DC09 - 9 * DC17 + 9 * DC19 + DC21 - DC25
            : DC10 + DC16 - 10 * DC17 + 10 * DC19 - DC02 - DC20 + DC22 - DC24 + DC04 - DC06 + 10 * DC07 - 10 * DC09);
          ws[9] = est(num, Q11, Al);
        }
        if ((Al = cb(5)) !== 0 && ws[2] === 0) {
          const num = Q00 * (changeDc
            ? 2 * DC07 - 5 * DC08 + 2 * DC09 + DC11 + 7 * DC12 - 14 * DC13 + 7 * DC14 + DC15 + 2 * DC17 - 5 * DC18 + 2 * DC19
            : -DC11 + 13 * DC12 - 24 * DC13 + 13 * DC14 - DC15);
          ws[2] = est(num, Q02, Al);
        }
        if (changeDc) {
          if ((Al = cb(6)) !== 0 && ws[3] === 0) ws[3] = est(Q00 * (DC07 - DC09 + 2 * DC12 - 2 * DC14 + DC17 - DC19), Q03, Al);
          if ((Al = cb(7)) !== 0 && ws[10] === 0) ws[10] = est(Q00 * (DC07 - 3 * DC08 + DC09 - DC17 + 3 * DC18 - DC19), Q12, Al);
          if ((Al = cb(8)) !== 0 && ws[17] === 0) ws[17] = est(Q00 * (DC07 - DC09 - 3 * DC12 + 3 * DC14 + DC17 - DC19), Q21, Al);
          if ((Al = cb(9)) !== 0 && ws[24] === 0) ws[24] = est(Q00 * (DC07 + 2 * DC08 + DC09 - DC17 - 2 * DC18 - DC19), Q30, Al);
          const num = Q00 * (-2 * DC01 - 6 * DC02 - 8 * DC03 - 6 * DC04 - 2 * DC05 - 6 * DC06 + 6 * DC07 + 42 * DC08 +
            6 * DC09 - 6 * DC10 - 8 * DC11 + 42 * DC12 + 152 * DC13 + 42 * DC14 - 8 * DC15 - 6 * DC16 + 6 * DC17 +
            42 * DC18 + 6 * DC19 - 6 * DC20 - 2 * DC21 - 6 * DC22 - 8 * DC23 - 6 * DC24 - 2 * DC25);
          ws[0] = est(num, Q00, 0);
        }
        idctIslow(ws, 0, q, plane, br * 8 * stride + b * 8, stride);
        DC01 = DC02; DC02 = DC03; DC03 = DC04; DC04 = DC05;
        DC06 = DC07; DC07 = DC08; DC08 = DC09; DC09 = DC10;
        DC11 = DC12; DC12 = DC13; DC13 = DC14; DC14 = DC15;
        DC16 = DC17; DC17 = DC18; DC18 = DC19; DC19 = DC20;
        DC21 = DC22; DC22 = DC23; DC23 = DC24; DC24 = DC25;
      }
    }
  }
}
