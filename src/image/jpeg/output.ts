// The output side of libjpeg-turbo's decompressor, for Pillow's configuration, plus Pillow's own
// conversion to RGB:
//   - per-component upsampling chosen as in jdsample.c jinit_upsampler (do_fancy_upsampling = TRUE):
//     full size; h2v1 fancy (triangle filter, only when the component is wider than 2 samples) or
//     replication; h1v2 fancy; h2v2 fancy (when wider than 2 samples) or replication; other integral
//     factors by replication; fractional factors are an error (JERR_FRACT_SAMPLE_NOTIMPL);
//   - the context rows of jdmainct.c: above the first row is the first row itself, below the last
//     real row (downsampled_height) the last row repeats;
//   - colour conversion of jdcolor.c / jdcolext.c (16-bit fixed-point tables) into the colour space
//     Pillow asks for: JCS_GRAYSCALE for mode L, JCS_EXT_RGBX for mode RGB, JCS_CMYK for mode CMYK;
//   - Pillow's part: mode L replicated into RGB (Convert.c l2rgb); CMYK read as "CMYK;I" (every byte
//     inverted, Unpack.c unpackCMYKI, "assume adobe conventions" in JpegImagePlugin.py) and converted
//     with Convert.c cmyk2rgb: nk = 255 - k, out = CLIP8(nk - MULDIV255(c, nk)).
//
// Rows arrive one iMCU row at a time (the IDCT writes into a ring of three iMCU rows per component)
// and leave as RGB, so no full-size component plane is ever held (issue 13: memory).
import type { JpegFrame } from './decoder.ts';
import { JpegStop } from './errors.ts';

export type ColorTransform = 'ycc' | 'rgb' | 'gray' | 'cmyk' | 'ycck';
type Method = 'full' | 'h2v1f' | 'h1v2f' | 'h2v2f' | 'int';

// jdcolor.c build_ycc_rgb_table: SCALEBITS = 16, FIX(x) = (JLONG)(x * 65536 + 0.5).
const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256), CB_B = new Int32Array(256), CR_G = new Int32Array(256), CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
// range_limit for colour conversion: CLAMP[x + 384] = x clamped to 0..255, for x in -384..639.
const CLAMP = new Uint8Array(1024);
for (let i = 0; i < 1024; i++) CLAMP[i] = Math.min(255, Math.max(0, i - 384));
const clamp = (v: number) => CLAMP[v + 384];

interface Plane {
  method: Method;
  hExp: number; vExp: number; // replication factors for 'int'
  rows: number; // sample rows per iMCU row (v * 8)
  stride: number; // samples per row in the ring (width_in_blocks * 8)
  ring: Uint8Array; // three iMCU rows
  dsWidth: number; dsHeight: number;
  row: Uint8Array; // one upsampled row (method != 'full')
  col: Int32Array; // column sums for h2v2 fancy
  src: Uint8Array; // where the last upsampled() row is: src[srcOff ..]
  srcOff: number;
}

export class OutputStage {
  out = new Uint8Array(0); // RGB, width * height * 3, once allocate() ran
  private readonly planes: Plane[];
  private readonly W: number;
  private readonly H: number;
  private readonly rowsPerIMCU: number;
  private readonly total: number;

  constructor(frame: JpegFrame, private readonly transform: ColorTransform) {
    this.W = frame.width;
    this.H = frame.height;
    this.rowsPerIMCU = frame.maxV * 8;
    this.total = frame.totalIMCURows;
    this.planes = frame.components.map((c) => {
      let method: Method;
      const fancyWide = c.dsWidth > 2;
      if (c.h === frame.maxH && c.v === frame.maxV) method = 'full';
      else if (c.h * 2 === frame.maxH && c.v === frame.maxV) method = fancyWide ? 'h2v1f' : 'int';
      else if (c.h === frame.maxH && c.v * 2 === frame.maxV) method = 'h1v2f';
      else if (c.h * 2 === frame.maxH && c.v * 2 === frame.maxV) method = fancyWide ? 'h2v2f' : 'int';
      else if (frame.maxH % c.h === 0 && frame.maxV % c.v === 0) method = 'int';
      else throw new JpegStop('corrupt', 'fractional sampling not implemented yet (sampling factors do not divide)');
      const stride = c.widthInBlocks * 8;
      const rows = c.v * 8;
      return {
        method, hExp: frame.maxH / c.h, vExp: frame.maxV / c.v, rows, stride, ring: new Uint8Array(3 * rows * stride),
        dsWidth: c.dsWidth, dsHeight: c.dsHeight,
        row: new Uint8Array(method === 'full' ? 0 : Math.max(stride, c.dsWidth) * (frame.maxH / c.h) + 16),
        col: new Int32Array(method === 'h2v2f' ? c.dsWidth : 0),
        src: new Uint8Array(0), srcOff: 0,
      };
    });
  }

  /** The full-size output, allocated only once the file has passed the checks that need no pixels. */
  allocate(): void {
    this.out = new Uint8Array(this.W * this.H * 3);
  }

  /** Where the IDCT writes iMCU row `row` of component `ci` (rows of `stride(ci)` samples). */
  rowBuffer(ci: number, row: number): Uint8Array {
    const p = this.planes[ci];
    const size = p.rows * p.stride;
    return p.ring.subarray((row % 3) * size, (row % 3 + 1) * size);
  }

  stride(ci: number): number {
    return this.planes[ci].stride;
  }

  /** Called after iMCU row `row` is complete; emits the output rows that are now final. */
  pushIMCURow(row: number): void {
    if (row >= 1) this.emit(row - 1);
    if (row === this.total - 1) this.emit(row);
  }

  /** Offset in p.ring of sample row r (clamped to the real rows, as jdmainct.c's context pointers). */
  private rowAt(p: Plane, r: number): number {
    if (r < 0) r = 0;
    else if (r >= p.dsHeight) r = p.dsHeight - 1;
    return ((Math.floor(r / p.rows) % 3) * p.rows + (r % p.rows)) * p.stride;
  }

  /** Upsampled row y of a plane, left in p.src[p.srcOff ..]. */
  private upsampled(p: Plane, y: number): void {
    p.src = p.row;
    p.srcOff = 0;
    const ring = p.ring, out = p.row, dw = p.dsWidth;
    switch (p.method) {
      case 'full':
        p.src = ring;
        p.srcOff = this.rowAt(p, y);
        return;
      case 'int': {
        const src = this.rowAt(p, Math.floor(y / p.vExp));
        const he = p.hExp, n = Math.ceil(this.W / he);
        for (let i = 0, o = 0; i < n; i++) {
          const v = ring[src + i];
          for (let k = 0; k < he; k++) out[o++] = v;
        }
        return;
      }
      case 'h2v1f': {
        const s = this.rowAt(p, y);
        // jdsample.c h2v1_fancy_upsample: 3/4 nearer + 1/4 further, biases 1 and 2.
        let v = ring[s];
        out[0] = v;
        out[1] = (v * 3 + ring[s + 1] + 2) >> 2;
        for (let i = 1; i < dw - 1; i++) {
          v = ring[s + i] * 3;
          out[2 * i] = (v + ring[s + i - 1] + 1) >> 2;
          out[2 * i + 1] = (v + ring[s + i + 1] + 2) >> 2;
        }
        v = ring[s + dw - 1];
        out[2 * dw - 2] = (v * 3 + ring[s + dw - 2] + 1) >> 2;
        out[2 * dw - 1] = v;
        return;
      }
      case 'h1v2f': {
        // h1v2_fancy_upsample: the upper output row leans on the row above (bias 1), the lower on the row below (bias 2).
        const r = y >> 1, lower = y & 1;
        const a = this.rowAt(p, r), b = this.rowAt(p, lower ? r + 1 : r - 1), bias = lower ? 2 : 1;
        for (let i = 0; i < dw; i++) out[i] = (ring[a + i] * 3 + ring[b + i] + bias) >> 2;
        return;
      }
      case 'h2v2f': {
        const r = y >> 1, lower = y & 1;
        const a = this.rowAt(p, r), b = this.rowAt(p, lower ? r + 1 : r - 1);
        const cs = p.col;
        for (let i = 0; i < dw; i++) cs[i] = ring[a + i] * 3 + ring[b + i];
        // h2v2_fancy_upsample: 9/16, 3/16, 3/16, 1/16 with biases 8 and 7.
        out[0] = (cs[0] * 4 + 8) >> 4;
        out[1] = (cs[0] * 3 + cs[1] + 7) >> 4;
        for (let i = 1; i < dw - 1; i++) {
          out[2 * i] = (cs[i] * 3 + cs[i - 1] + 8) >> 4;
          out[2 * i + 1] = (cs[i] * 3 + cs[i + 1] + 7) >> 4;
        }
        out[2 * dw - 2] = (cs[dw - 1] * 3 + cs[dw - 2] + 8) >> 4;
        out[2 * dw - 1] = (cs[dw - 1] * 4 + 7) >> 4;
        return;
      }
    }
  }

  private emit(row: number): void {
    const W = this.W, out = this.out, planes = this.planes, t = this.transform;
    const y0 = row * this.rowsPerIMCU, y1 = Math.min(y0 + this.rowsPerIMCU, this.H);
    for (let y = y0; y < y1; y++) {
      const o = y * W * 3;
      const p0 = planes[0];
      this.upsampled(p0, y);
      if (t === 'gray') { grayRow(p0.src, p0.srcOff, out, o, W); continue; }
      const p1 = planes[1], p2 = planes[2];
      this.upsampled(p1, y);
      this.upsampled(p2, y);
      if (t === 'ycc') yccRow(p0.src, p0.srcOff, p1.src, p1.srcOff, p2.src, p2.srcOff, out, o, W);
      else if (t === 'rgb') rgbRow(p0.src, p0.srcOff, p1.src, p1.srcOff, p2.src, p2.srcOff, out, o, W);
      else {
        const p3 = planes[3];
        this.upsampled(p3, y);
        cmykRow(p0.src, p0.srcOff, p1.src, p1.srcOff, p2.src, p2.srcOff, p3.src, p3.srcOff, t === 'ycck', out, o, W);
      }
    }
  }
}

function grayRow(g: Uint8Array, go: number, out: Uint8Array, o: number, W: number): void {
  for (let x = 0; x < W; x++, o += 3) { const v = g[go + x]; out[o] = v; out[o + 1] = v; out[o + 2] = v; }
}

/** jdcolext.c ycc_rgb_convert. */
function yccRow(a: Uint8Array, ao: number, b: Uint8Array, bo: number, c: Uint8Array, co: number, out: Uint8Array, o: number, W: number): void {
  for (let x = 0; x < W; x++, o += 3) {
    const Y = a[ao + x] + 384, cb = b[bo + x], cr = c[co + x];
    out[o] = CLAMP[Y + CR_R[cr]];
    out[o + 1] = CLAMP[Y + ((CB_G[cb] + CR_G[cr]) >> 16)];
    out[o + 2] = CLAMP[Y + CB_B[cb]];
  }
}

function rgbRow(a: Uint8Array, ao: number, b: Uint8Array, bo: number, c: Uint8Array, co: number, out: Uint8Array, o: number, W: number): void {
  for (let x = 0; x < W; x++, o += 3) { out[o] = a[ao + x]; out[o + 1] = b[bo + x]; out[o + 2] = c[co + x]; }
}

function cmykRow(a: Uint8Array, ao: number, b: Uint8Array, bo: number, c: Uint8Array, co: number, k: Uint8Array, ko: number,
  ycck: boolean, out: Uint8Array, o: number, W: number): void {
  for (let x = 0; x < W; x++, o += 3) {
    let C = a[ao + x], M = b[bo + x], Ye = c[co + x];
    if (ycck) { // ycck_cmyk_convert: CMY = 255 - RGB of the YCC triple; K passes through
      const Y = C, cb = M, cr = Ye;
      C = clamp(255 - (Y + CR_R[cr]));
      M = clamp(255 - (Y + ((CB_G[cb] + CR_G[cr]) >> 16)));
      Ye = clamp(255 - (Y + CB_B[cb]));
    }
    // Pillow: "CMYK;I" inverts each byte, then cmyk2rgb with nk = 255 - K' = K.
    const nk = k[ko + x];
    out[o] = cmykChannel(255 - C, nk);
    out[o + 1] = cmykChannel(255 - M, nk);
    out[o + 2] = cmykChannel(255 - Ye, nk);
  }
}

/** Convert.c cmyk2rgb for one channel: CLIP8(nk - MULDIV255(c, nk)). */
function cmykChannel(c: number, nk: number): number {
  const t = c * nk + 128;
  const v = nk - (((t >> 8) + t) >> 8);
  return v <= 0 ? 0 : v < 256 ? v : 255;
}
