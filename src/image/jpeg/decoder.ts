// A JPEG decoder that reproduces libjpeg-turbo as Pillow drives it, byte for byte.
//
// Pillow (src/libImaging/JpegDecode.c @ 11.3.0) hands libjpeg-turbo the file through a *suspending*
// source manager, in blocks of 64 KiB (ImageFile.load, decodermaxblock), ignores every warning
// (output_message is a no-op) and turns every error_exit into "broken data stream". When the file
// ends while libjpeg still wants bytes, ImageFile.load raises "image file is truncated". So Pillow's
// verdict on a damaged file is libjpeg-turbo's distinction between warnings and errors, plus "did the
// decoder ask for a byte past the end". This file follows the libjpeg-turbo 3.1 decompression path for
// 8-bit lossy JPEG in that configuration (default parameters: islow IDCT, fancy upsampling, block
// smoothing, no scaling), one module per upstream file:
//
//   marker reading            src/jdmarker.c (read_markers, next_marker, get_sof/sos/dht/dqt/dri/dac,
//                             jpeg_resync_to_restart), src/jdapimin.c (tables-only streams,
//                             default_decompress_parms), src/jdinput.c (initial_setup, per_scan_setup,
//                             latch_quant_tables, consume_markers)
//   Huffman, sequential       src/jdhuff.c (jpeg_make_d_derived_tbl in ./huffman_table.ts, jpeg_fill_bit_buffer, decode_mcu
//                             with its fast and slow paths, process_restart), src/jstdhuff.c
//   Huffman, progressive      src/jdphuff.c
//   arithmetic                src/jdarith.c, src/jaricom.c
//   coefficient buffer        src/jdcoefct.c (decompress_onepass, consume_data, decompress_data,
//                             decompress_smooth_data + smoothing_ok in ./smoothing.ts)
//   IDCT                      src/jidctint.c as simd/x86_64/jidctint-avx2.asm computes it (./idct.ts)
//   upsampling + colour       src/jdsample.c, src/jdmainct.c (context rows), src/jdcolor.c (./output.ts)
//
// The bit reader keeps libjpeg-turbo's exact accounting (a 64-bit bit buffer refilled to 57 bits, the
// 6-byte refill of the fast path, the 64 KiB blocks Pillow feeds), because whether a file that ends
// inside its last scan is "truncated" depends on how far ahead libjpeg-turbo had read.
import * as tables from './tables.ts';
import type { HuffSpec } from './tables.ts';
import { JpegStop } from './errors.ts';
import { makeDerived, type Derived } from './huffman_table.ts';
import { idctIslow as importedIdct } from './idct.ts';
import { OutputStage, type ColorTransform } from './output.ts';
import { smoothingLatch, smoothRow } from './smoothing.ts';

export { JpegStop };
const corrupt = (msg: string) => new JpegStop('corrupt', msg);
// Hot-path functions as module constants: called per block / per coefficient, they should not go
// through the loader's live-binding accessors on each call.
const idctIslow = importedIdct;
const { ARITH_TABLE, NATURAL_ORDER, STD_HUFF } = tables;
/** HUFF_EXTEND: the s-bit value x as a signed coefficient. */
const extend = (x: number, s: number) => (x < 1 << (s - 1) ? x - (1 << s) + 1 : x);

/** Pillow reads the file in blocks of ImageFile.MAXBLOCK bytes and feeds them to the decoder. */
export const PILLOW_BLOCK = 65536;
const SUSPEND = { suspend: true }; // thrown by the bit readers when libjpeg-turbo would suspend

const M_SOF0 = 0xc0, M_SOF1 = 0xc1, M_SOF2 = 0xc2, M_SOF3 = 0xc3, M_DHT = 0xc4, M_SOF5 = 0xc5, M_SOF6 = 0xc6;
const M_SOF7 = 0xc7, M_JPG = 0xc8, M_SOF9 = 0xc9, M_SOF10 = 0xca, M_SOF11 = 0xcb, M_DAC = 0xcc, M_SOF13 = 0xcd;
const M_SOF14 = 0xce, M_SOF15 = 0xcf, M_RST0 = 0xd0, M_RST7 = 0xd7, M_SOI = 0xd8, M_EOI = 0xd9, M_SOS = 0xda;
const M_DQT = 0xdb, M_DNL = 0xdc, M_DRI = 0xdd, M_APP0 = 0xe0, M_APP14 = 0xee, M_APP15 = 0xef, M_COM = 0xfe, M_TEM = 0x01;

const MIN_GET_BITS = 57; // BIT_BUF_SIZE (64 on 64-bit builds) - 7, src/jdhuff.c
const RING = 4096, RMASK = RING - 1; // bytes held for the bit reader; more than one MCU can consume
const LOADED_MASK = 2 ** 30 - 1; // loadedBits wraps at a multiple of the ring size (positions stay int32)
const MAX_DIMENSION = 65500; // JPEG_MAX_DIMENSION, src/jmorecfg.h

export interface Component {
  id: number; index: number; h: number; v: number; tq: number;
  widthInBlocks: number; heightInBlocks: number; dsWidth: number; dsHeight: number;
  quant: Int16Array | null; // latched at the component's first scan (jdinput.c latch_quant_tables), as int16
  dcTbl: number; acTbl: number;
  // per scan (per_scan_setup)
  mcuWidth: number; mcuHeight: number; mcuBlocks: number; lastColWidth: number; lastRowHeight: number;
  // whole-image coefficients for multi-scan files: blocksWide x blocksHigh blocks of 64 int16
  coef: Int16Array | null; blocksWide: number;
}

export interface JpegFrame {
  width: number; height: number; components: Component[]; maxH: number; maxV: number;
  progressive: boolean; arithmetic: boolean; totalIMCURows: number;
  sawJFIF: boolean; sawAdobe: boolean; adobeTransform: number;
}

export class JpegDecoder {
  private readonly d: Uint8Array;
  private readonly len: number;
  private pos = 0; // libjpeg's next_input_byte
  private bufEnd: number; // end of the bytes Pillow has fed so far
  private unreadMarker = 0;
  // marker-reader state
  private sawSOI = false;
  private sawSOF = false;
  private nextRestartNum = 0;
  private restartInterval = 0;
  private sawJFIF = false;
  private sawAdobe = false;
  private adobeTransform = 0;
  private readonly qt: (Int16Array | null)[] = [null, null, null, null];
  private readonly dcSpec: (HuffSpec | null)[] = [null, null, null, null];
  private readonly acSpec: (HuffSpec | null)[] = [null, null, null, null];
  private readonly arithL = new Uint8Array(16);
  private readonly arithU = new Uint8Array(16).fill(1);
  private readonly arithK = new Uint8Array(16).fill(5);
  private progressive = false;
  private arithmetic = false;
  private width = 0;
  private height = 0;
  private precision = 0;
  private comps: Component[] = [];
  private maxH = 1;
  private maxV = 1;
  private totalIMCURows = 0;
  private inputScanNumber = 0;
  // current scan
  private scanComps: Component[] = [];
  private Ss = 0; private Se = 0; private Ah = 0; private Al = 0;
  private mcusPerRow = 0; private mcuRowsInScan = 0; private blocksInMCU = 0;
  private mcuMembership = new Int32Array(10);
  private coefBits: Int32Array | null = null; // [2 * ncomp][64]: current and previous-scan precision
  private lastGoodIMCURow = 0;
  private inputIMCURow = 0;
  // Huffman bit reader (libjpeg's bitread state, exact accounting)
  private cl = 0; // bits_left
  private loadedBits = 0; // bits moved into the bit buffer since the reader started (ring index * 8)
  private readonly ring = new Uint8Array(RING);
  private insufficient = false;
  private readonly lastDc = new Int32Array(4);
  private eobrun = 0;
  private restartsToGo = 0;
  private dcDerived: (Derived | null)[] = [null, null, null, null];
  private acDerived: (Derived | null)[] = [null, null, null, null];
  // arithmetic decoder state (jdarith.c)
  private ac = 0; private aa = 0; private act = 0;
  private readonly dcStats: Uint8Array[] = [];
  private readonly acStats: Uint8Array[] = [];
  private readonly dcContext = new Int32Array(4);
  private readonly fixedBin = Uint8Array.of(113);

  constructor(bytes: Uint8Array) {
    this.d = bytes;
    this.len = bytes.length;
    this.bufEnd = Math.min(this.len, PILLOW_BLOCK);
  }

  // ---- source manager: Pillow's suspending reader -------------------------------------------------
  /** Makes byte `i` available: Pillow feeds further 64 KiB blocks; past the end of the file it is truncated. */
  private avail(i: number): void {
    if (i < this.bufEnd) return;
    if (i >= this.len) throw new JpegStop('truncated', `file ends at byte ${this.len} where the decoder needs more data`);
    this.bufEnd = Math.min(this.len, Math.ceil((i + 1) / PILLOW_BLOCK) * PILLOW_BLOCK);
  }
  private byte(): number {
    this.avail(this.pos);
    return this.d[this.pos++];
  }
  private u16(): number {
    const a = this.byte();
    return (a << 8) | this.byte();
  }
  private skip(n: number): void {
    if (n <= 0) return;
    this.avail(this.pos + n - 1);
    this.pos += n;
  }
  /** More input blocks, as when libjpeg suspends inside a scan in the middle of the file. */
  private feedMore(): boolean {
    if (this.bufEnd >= this.len) return false;
    this.bufEnd = Math.min(this.len, this.bufEnd + PILLOW_BLOCK);
    return true;
  }

  // ---- jdmarker.c -----------------------------------------------------------------------------------
  private nextMarker(): void {
    for (;;) {
      let c = this.byte();
      while (c !== 0xff) c = this.byte(); // garbage before a marker: a warning (JWRN_EXTRANEOUS_DATA)
      do c = this.byte(); while (c === 0xff);
      if (c !== 0) { this.unreadMarker = c; return; }
      // FF/00: stuffed zero outside a scan; discarded
    }
  }

  private firstMarker(): void {
    const c = this.byte(), c2 = this.byte();
    if (c !== 0xff || c2 !== M_SOI) throw corrupt(`not a JPEG file: starts with 0x${hex2(c)} 0x${hex2(c2)}`);
    this.unreadMarker = c2;
  }

  /** read_markers: returns at SOS (scan header read) or EOI. */
  private readMarkers(): 'sos' | 'eoi' {
    for (;;) {
      if (this.unreadMarker === 0) {
        if (!this.sawSOI) this.firstMarker();
        else this.nextMarker();
      }
      const m = this.unreadMarker;
      switch (m) {
        case M_SOI: this.getSOI(); break;
        case M_SOF0: case M_SOF1: this.getSOF(false, false); break;
        case M_SOF2: this.getSOF(true, false); break;
        case M_SOF9: this.getSOF(false, true); break;
        case M_SOF10: this.getSOF(true, true); break;
        case M_SOF3: case M_SOF11:
          // libjpeg-turbo 3.x decodes lossless JPEG; this decoder does not (docs/jpeg.md).
          throw new JpegStop('corrupt', 'lossless JPEG (SOF3/SOF11) is not supported by this decoder');
        case M_SOF5: case M_SOF6: case M_SOF7: case M_JPG: case M_SOF13: case M_SOF14: case M_SOF15:
          throw corrupt(`unsupported JPEG process: SOF type 0x${hex2(m)}`);
        case M_SOS: this.getSOS(); this.unreadMarker = 0; return 'sos';
        case M_EOI: this.unreadMarker = 0; return 'eoi';
        case M_DAC: this.getDAC(); break;
        case M_DHT: this.getDHT(); break;
        case M_DQT: this.getDQT(); break;
        case M_DRI: {
          const length = this.u16();
          if (length !== 4) throw corrupt('bogus marker length (DRI)');
          this.restartInterval = this.u16();
          break;
        }
        case M_APP0: case M_APP14: this.getAppn(m); break;
        case M_DNL: this.skip(this.u16() - 2); break;
        default:
          if ((m > M_APP0 && m <= M_APP15) || m === M_COM) { this.skip(this.u16() - 2); break; }
          if ((m >= M_RST0 && m <= M_RST7) || m === M_TEM) break; // parameterless, ignored
          throw corrupt(`unsupported marker type 0x${hex2(m)}`);
      }
      this.unreadMarker = 0;
    }
  }

  private getSOI(): void {
    if (this.sawSOI) throw corrupt('invalid JPEG file structure: two SOI markers');
    this.arithL.fill(0); this.arithU.fill(1); this.arithK.fill(5);
    this.restartInterval = 0;
    this.sawJFIF = false;
    this.sawAdobe = false;
    this.adobeTransform = 0;
    this.sawSOI = true;
  }

  private getSOF(progressive: boolean, arithmetic: boolean): void {
    if (this.sawSOF) throw corrupt('invalid JPEG file structure: two SOF markers');
    this.progressive = progressive;
    this.arithmetic = arithmetic;
    const length = this.u16();
    this.precision = this.byte();
    this.height = this.u16();
    this.width = this.u16();
    const n = this.byte();
    if (this.height <= 0 || this.width <= 0 || n <= 0) throw corrupt('empty JPEG image (DNL not supported)');
    if (length - 8 !== n * 3) throw corrupt('bogus marker length (SOF)');
    this.comps = [];
    for (let i = 0; i < n; i++) {
      const id = this.byte(), hv = this.byte(), tq = this.byte();
      this.comps.push({
        id, index: i, h: (hv >> 4) & 15, v: hv & 15, tq, widthInBlocks: 0, heightInBlocks: 0, dsWidth: 0, dsHeight: 0,
        quant: null, dcTbl: 0, acTbl: 0, mcuWidth: 0, mcuHeight: 0, mcuBlocks: 0, lastColWidth: 0, lastRowHeight: 0,
        coef: null, blocksWide: 0,
      });
    }
    this.sawSOF = true;
  }

  private getSOS(): void {
    if (!this.sawSOF) throw corrupt('invalid JPEG file structure: SOS before SOF');
    const length = this.u16();
    const n = this.byte();
    if (length !== n * 2 + 6 || n < 1 || n > 4) throw corrupt('bogus marker length (SOS)');
    // cur_comp_info[] is filled by scan position but searched by component index, as upstream does:
    // a component is only eligible while the scan slot with its index is still empty.
    const chosen: (Component | null)[] = [null, null, null, null];
    for (let i = 0; i < n; i++) {
      const cc = this.byte(), c = this.byte();
      let comp: Component | undefined;
      for (let ci = 0; ci < this.comps.length && ci < 4; ci++) {
        if (this.comps[ci].id === cc && !chosen[ci]) { comp = this.comps[ci]; break; }
      }
      if (!comp) throw corrupt(`invalid component ID ${cc} in SOS`);
      chosen[i] = comp;
      comp.dcTbl = (c >> 4) & 15;
      comp.acTbl = c & 15;
      for (let pi = 0; pi < i; pi++) if (chosen[pi] === comp) throw corrupt(`invalid component ID ${cc} in SOS`);
    }
    this.Ss = this.byte();
    this.Se = this.byte();
    const a = this.byte();
    this.Ah = (a >> 4) & 15;
    this.Al = a & 15;
    this.scanComps = chosen.slice(0, n) as Component[];
    this.nextRestartNum = 0;
    this.inputScanNumber++;
  }

  private getDAC(): void {
    let length = this.u16() - 2;
    while (length > 0) {
      const index = this.byte(), val = this.byte();
      length -= 2;
      if (index >= 32) throw corrupt(`bogus DAC index ${index}`);
      if (index >= 16) this.arithK[index - 16] = val;
      else {
        this.arithL[index] = val & 15;
        this.arithU[index] = val >> 4;
        if (this.arithL[index] > this.arithU[index]) throw corrupt(`bogus DAC value 0x${hex2(val)}`);
      }
    }
    if (length !== 0) throw corrupt('bogus marker length (DAC)');
  }

  private getDHT(): void {
    let length = this.u16() - 2;
    while (length > 16) {
      let index = this.byte();
      const bits = new Uint8Array(17);
      let count = 0;
      for (let i = 1; i <= 16; i++) { bits[i] = this.byte(); count += bits[i]; }
      length -= 17;
      if (count > 256 || count > length) throw corrupt('bogus Huffman table definition');
      const vals = new Uint8Array(256);
      for (let i = 0; i < count; i++) vals[i] = this.byte();
      length -= count;
      const ac = (index & 0x10) !== 0;
      if (ac) index -= 0x10;
      if (index < 0 || index >= 4) throw corrupt(`bogus DHT index ${index}`);
      (ac ? this.acSpec : this.dcSpec)[index] = { bits, vals };
    }
    if (length !== 0) throw corrupt('bogus marker length (DHT)');
  }

  private getDQT(): void {
    let length = this.u16() - 2;
    while (length > 0) {
      let n = this.byte();
      const prec = n >> 4;
      n &= 15;
      if (n >= 4) throw corrupt(`bogus DQT index ${n}`);
      const t = this.qt[n] ?? (this.qt[n] = new Int16Array(64));
      for (let i = 0; i < 64; i++) t[NATURAL_ORDER[i]] = prec ? this.u16() : this.byte(); // int16 like ISLOW_MULT_TYPE
      length -= 65;
      if (prec) length -= 64;
    }
    if (length !== 0) throw corrupt('bogus marker length (DQT)');
  }

  /** get_interesting_appn: the first 14 bytes of APP0 (JFIF) and APP14 (Adobe) matter. */
  private getAppn(m: number): void {
    let length = this.u16() - 2;
    const take = length >= 14 ? 14 : length > 0 ? length : 0;
    const b: number[] = [];
    for (let i = 0; i < take; i++) b.push(this.byte());
    length -= take;
    if (m === M_APP0 && take >= 14 && b[0] === 0x4a && b[1] === 0x46 && b[2] === 0x49 && b[3] === 0x46 && b[4] === 0) {
      this.sawJFIF = true;
    }
    if (m === M_APP14 && take >= 12 && b[0] === 0x41 && b[1] === 0x64 && b[2] === 0x6f && b[3] === 0x62 && b[4] === 0x65) {
      this.sawAdobe = true;
      this.adobeTransform = b[11];
    }
    this.skip(length);
  }

  private readRestartMarker(): void {
    if (this.unreadMarker === 0) this.nextMarker();
    if (this.unreadMarker === M_RST0 + this.nextRestartNum) this.unreadMarker = 0;
    else this.resyncToRestart(this.nextRestartNum);
    this.nextRestartNum = (this.nextRestartNum + 1) & 7;
  }

  /** jpeg_resync_to_restart (the default resync of the data source Pillow installs). */
  private resyncToRestart(desired: number): void {
    let marker = this.unreadMarker;
    for (;;) {
      let action: number;
      if (marker < M_SOF0) action = 2;
      else if (marker < M_RST0 || marker > M_RST7) action = 3;
      else if (marker === M_RST0 + ((desired + 1) & 7) || marker === M_RST0 + ((desired + 2) & 7)) action = 3;
      else if (marker === M_RST0 + ((desired - 1) & 7) || marker === M_RST0 + ((desired - 2) & 7)) action = 2;
      else action = 1;
      if (action === 1) { this.unreadMarker = 0; return; }
      if (action === 3) return;
      this.nextMarker();
      marker = this.unreadMarker;
    }
  }

  // ---- jdapimin.c / jdinput.c ---------------------------------------------------------------------
  /** jpeg_read_header(FALSE) in Pillow's loop: tables-only datastreams are skipped. */
  readHeader(): JpegFrame {
    for (;;) {
      const r = this.readMarkers();
      if (r === 'sos') break;
      if (this.sawSOF) throw corrupt('invalid JPEG file structure: missing SOS marker');
      // Tables-only datastream: jpeg_abort, then the next jpeg_read_header needs a new SOI right here.
      this.sawSOI = false;
    }
    this.initialSetup();
    return {
      width: this.width, height: this.height, components: this.comps, maxH: this.maxH, maxV: this.maxV,
      progressive: this.progressive, arithmetic: this.arithmetic, totalIMCURows: this.totalIMCURows,
      sawJFIF: this.sawJFIF, sawAdobe: this.sawAdobe, adobeTransform: this.adobeTransform,
    };
  }

  private initialSetup(): void {
    if (this.height > MAX_DIMENSION || this.width > MAX_DIMENSION) throw corrupt(`maximum supported image dimension is ${MAX_DIMENSION} pixels`);
    if (this.precision !== 8) throw corrupt(`unsupported JPEG data precision ${this.precision}`);
    if (this.comps.length > 10) throw corrupt(`too many color components: ${this.comps.length}, max 10`);
    this.maxH = 1;
    this.maxV = 1;
    for (const c of this.comps) {
      if (c.h <= 0 || c.h > 4 || c.v <= 0 || c.v > 4) throw corrupt('bogus sampling factors');
      this.maxH = Math.max(this.maxH, c.h);
      this.maxV = Math.max(this.maxV, c.v);
    }
    for (const c of this.comps) {
      c.widthInBlocks = Math.ceil((this.width * c.h) / (this.maxH * 8));
      c.heightInBlocks = Math.ceil((this.height * c.v) / (this.maxV * 8));
      c.dsWidth = Math.ceil((this.width * c.h) / this.maxH);
      c.dsHeight = Math.ceil((this.height * c.v) / this.maxV);
      c.quant = null;
    }
    this.totalIMCURows = Math.ceil(this.height / (this.maxV * 8));
  }

  private perScanSetup(): void {
    const sc = this.scanComps;
    if (sc.length === 1) {
      const c = sc[0];
      this.mcusPerRow = c.widthInBlocks;
      this.mcuRowsInScan = c.heightInBlocks;
      c.mcuWidth = 1; c.mcuHeight = 1; c.mcuBlocks = 1; c.lastColWidth = 1;
      c.lastRowHeight = c.heightInBlocks % c.v || c.v;
      this.blocksInMCU = 1;
      this.mcuMembership[0] = 0;
    } else {
      this.mcusPerRow = Math.ceil(this.width / (this.maxH * 8));
      this.mcuRowsInScan = Math.ceil(this.height / (this.maxV * 8));
      this.blocksInMCU = 0;
      sc.forEach((c, ci) => {
        c.mcuWidth = c.h; c.mcuHeight = c.v; c.mcuBlocks = c.h * c.v;
        c.lastColWidth = c.widthInBlocks % c.h || c.h;
        c.lastRowHeight = c.heightInBlocks % c.v || c.v;
        if (this.blocksInMCU + c.mcuBlocks > 10) throw corrupt('sampling factors too large for interleaved scan');
        for (let i = 0; i < c.mcuBlocks; i++) this.mcuMembership[this.blocksInMCU++] = ci;
      });
    }
    for (const c of sc) { // latch_quant_tables
      if (c.quant) continue;
      const t = c.tq < 4 ? this.qt[c.tq] : null;
      if (!t) throw corrupt(`quantization table 0x${hex2(c.tq)} was not defined`);
      c.quant = t.slice();
    }
  }

  // ---- decoding driver (jdapistd.c jpeg_start_decompress / read_scanlines / finish_decompress) ----
  /** Decodes the whole image into `out` (see OutputStage for the pixel format). */
  decode(frame: JpegFrame, colorTransform: ColorTransform): Uint8Array {
    const ncomp = this.comps.length;
    const multiScan = this.scanComps.length < ncomp || this.progressive;
    // master_selection: upsampler choice can refuse fractional factors (JERR_FRACT_SAMPLE_NOTIMPL).
    const output = new OutputStage(frame, colorTransform);
    this.perScanSetup(); // (start_input_pass does it again; the quantisation tables are latched once)
    this.refuseCertainTruncation(multiScan);
    output.allocate();
    // Entropy decoder setup.
    if (!this.arithmetic && !this.progressive) {
      // std_huff_tables: Motion-JPEG files omit the standard tables.
      this.dcSpec[0] ??= STD_HUFF.dc0; this.acSpec[0] ??= STD_HUFF.ac0;
      this.dcSpec[1] ??= STD_HUFF.dc1; this.acSpec[1] ??= STD_HUFF.ac1;
    }
    if (this.progressive) {
      this.coefBits = new Int32Array(2 * ncomp * 64).fill(-1, 0, ncomp * 64);
    }
    if (multiScan) {
      for (const c of this.comps) {
        c.blocksWide = Math.ceil(c.widthInBlocks / c.h) * c.h;
        const high = Math.ceil(c.heightInBlocks / c.v) * c.v;
        c.coef = new Int16Array(c.blocksWide * high * 64);
      }
    }
    this.startInputPass();
    if (multiScan) {
      // Absorb the whole file: every scan until EOI.
      for (;;) {
        this.consumeScan();
        // finish_input_pass, then consume_markers
        const r = this.readMarkers();
        if (r === 'eoi') break;
        this.startInputPass();
      }
      this.outputMultiScan(output);
    } else {
      this.decodeSingleScan(output);
      // jpeg_finish_decompress: read to EOI. Running out of data here is fine for Pillow (all rows
      // were delivered); a marker error is not.
      try {
        for (;;) {
          const r = this.readMarkers();
          if (r === 'eoi') break;
          throw corrupt('invalid JPEG file structure: two SOS markers in a single-scan image');
        }
      } catch (e) {
        if (!(e instanceof JpegStop && e.kind === 'truncated')) throw e;
      }
    }
    return output.out;
  }

  /**
   * Files that libjpeg-turbo would certainly stop on for want of data, found before the big
   * allocations (the output image, the coefficient buffer), so that a small file claiming a huge
   * size costs nothing (issue 13):
   *  - a multi-scan image is output only after EOI, so without any FF D9 after the first scan header
   *    the file can only end in "truncated" (or an earlier error);
   *  - a single Huffman scan spends at least 2 bits per block (a DC and an AC code of >= 1 bit each)
   *    unless a marker ends its data; with fewer bits left and no marker, the reader hits the end.
   */
  private refuseCertainTruncation(multiScan: boolean): void {
    const d = this.d, from = this.pos;
    if (multiScan) {
      let i = d.indexOf(0xff, from);
      while (i >= 0 && i + 1 < this.len && d[i + 1] !== 0xd9) i = d.indexOf(0xff, i + 1);
      if (i < 0 || i + 1 >= this.len) {
        throw new JpegStop('truncated', 'no end-of-image marker after the first scan (a progressive or multi-scan image needs the whole file)');
      }
      return;
    }
    if (this.arithmetic) return;
    const blocks = this.scanComps.length > 1
      ? this.mcusPerRow * this.mcuRowsInScan * this.blocksInMCU
      : this.scanComps[0].widthInBlocks * this.scanComps[0].heightInBlocks;
    if ((this.len - from) * 8 >= 2 * blocks) return;
    for (let i = d.indexOf(0xff, from); i >= 0; i = d.indexOf(0xff, i + 1)) {
      let j = i + 1;
      while (j < this.len && d[j] === 0xff) j++;
      if (j < this.len && d[j] !== 0) return; // a marker: the data ends there, no suspension
    }
    throw new JpegStop('truncated', `${this.len - from} bytes of scan data cannot hold ${blocks} blocks and no marker ends them`);
  }

  private startInputPass(): void {
    this.perScanSetup();
    if (this.arithmetic) this.startPassArith();
    else if (this.progressive) this.startPassProgressive();
    else this.startPassHuffman();
    this.inputIMCURow = 0;
  }

  // ---- Huffman bit reader (jdhuff.c) ---------------------------------------------------------------
  private resetBitReader(): void {
    this.emptyBitBuffer();
    this.insufficient = false;
  }

  /** bits_left = 0. Zero stuffing can leave loadedBits mid-byte; the next byte starts a fresh ring slot. */
  private emptyBitBuffer(): void {
    this.cl = 0;
    this.loadedBits = ((this.loadedBits + 7) & ~7) & LOADED_MASK;
  }

  /** jpeg_fill_bit_buffer. Throws SUSPEND when libjpeg would suspend. */
  private fill(nbits: number): void {
    if (this.unreadMarker === 0) {
      const d = this.d, ring = this.ring;
      while (this.cl < MIN_GET_BITS) {
        if (this.pos >= this.bufEnd) throw SUSPEND;
        let c = d[this.pos++];
        if (c === 0xff) {
          do {
            if (this.pos >= this.bufEnd) throw SUSPEND;
            c = d[this.pos++];
          } while (c === 0xff);
          if (c === 0) c = 0xff;
          else { this.unreadMarker = c; break; }
        }
        ring[(this.loadedBits >>> 3) & RMASK] = c;
        this.loadedBits = (this.loadedBits + 8) & LOADED_MASK;
        this.cl += 8;
      }
      if (this.unreadMarker === 0) return;
    }
    if (nbits > this.cl) {
      // Out of data at a marker (JWRN_HIT_MARKER): libjpeg shifts in zero bits.
      this.insufficient = true;
      this.stuffZeros(MIN_GET_BITS - this.cl);
      this.cl = MIN_GET_BITS;
    }
  }

  private stuffZeros(nbits: number): void {
    const from = this.loadedBits >>> 3, to = ((this.loadedBits + nbits) >>> 3) + 3;
    for (let i = from; i <= to; i++) this.ring[i & RMASK] = 0;
    this.loadedBits = (this.loadedBits + nbits) & LOADED_MASK;
  }

  /** GET_BITS(n) for n <= 16 (the bits must be in the buffer). */
  private getBits(n: number): number {
    const p = this.loadedBits - this.cl;
    this.cl -= n;
    const b = p >>> 3, ring = this.ring;
    const x = (ring[b & RMASK] << 16) | (ring[(b + 1) & RMASK] << 8) | ring[(b + 2) & RMASK];
    return (x >>> (24 - (p & 7) - n)) & ((1 << n) - 1);
  }

  private peek8(): number {
    const p = this.loadedBits - this.cl;
    const b = p >>> 3, ring = this.ring;
    const x = (ring[b & RMASK] << 8) | ring[(b + 1) & RMASK];
    return (x >>> (8 - (p & 7))) & 0xff;
  }

  /** HUFF_DECODE (slow-path macro of jdhuff.h). */
  private huffDecode(t: Derived): number {
    if (this.cl < 8) {
      this.fill(0);
      if (this.cl < 8) return this.huffDecodeLong(t, 1);
    }
    const e = t.lookup[this.peek8()];
    const nb = e >> 8;
    if (nb <= 8) { this.cl -= nb; return e & 0xff; }
    return this.huffDecodeLong(t, nb);
  }

  /** jpeg_huff_decode: codes longer than the lookahead, one bit at a time. */
  private huffDecodeLong(t: Derived, minBits: number): number {
    let l = minBits;
    if (this.cl < l) this.fill(l);
    let code = this.getBits(l);
    while (code > t.maxcode[l]) {
      code <<= 1;
      if (this.cl < 1) this.fill(1);
      code |= this.getBits(1);
      l++;
    }
    if (l > 16) return 0; // JWRN_HUFF_BAD_CODE: a zero is the safest result
    return t.huffval[code + t.valoffset[l]];
  }

  private bits(n: number): number {
    if (this.cl < n) this.fill(n);
    return this.getBits(n);
  }

  private startPassHuffman(): void {
    // Sequential scans ignore Ss/Se/Ah/Al (JWRN_NOT_SEQUENTIAL is only a warning).
    this.scanComps.forEach((c, ci) => {
      this.dcDerived[c.dcTbl] = this.derived(c.dcTbl, true);
      this.acDerived[c.acTbl] = this.derived(c.acTbl, false);
      this.lastDc[ci] = 0;
    });
    this.resetBitReader();
    this.restartsToGo = this.restartInterval;
  }

  private derived(tbl: number, isDC: boolean): Derived {
    const spec = tbl < 4 ? (isDC ? this.dcSpec : this.acSpec)[tbl] : null;
    if (!spec) throw corrupt(`Huffman table 0x${hex2(tbl)} was not defined`);
    return makeDerived(spec, isDC);
  }

  private processRestartHuffman(): void {
    this.emptyBitBuffer(); // throw away the rest of the bit buffer
    this.readRestartMarker();
    this.lastDc.fill(0);
    this.eobrun = 0;
    this.restartsToGo = this.restartInterval;
    if (this.unreadMarker === 0) this.insufficient = false;
  }

  /** decode_mcu of jdhuff.c. blocks[blkn] = offset of block blkn in `arr[blkn]`. */
  private decodeMcuSequential(arr: Int16Array[], off: Int32Array): void {
    let usefast = true;
    if (this.restartInterval) {
      if (this.restartsToGo === 0) this.processRestartHuffman();
      usefast = false;
    }
    // Suspension restarts the MCU from the state saved here (BITREAD_LOAD_STATE / entropy->saved).
    const pos0 = this.pos, cl0 = this.cl, loaded0 = this.loadedBits, marker0 = this.unreadMarker;
    const dc0 = this.lastDc[0], dc1 = this.lastDc[1], dc2 = this.lastDc[2], dc3 = this.lastDc[3];
    for (;;) {
      if (this.bufEnd - this.pos < 512 * this.blocksInMCU || this.unreadMarker !== 0) usefast = false;
      if (this.insufficient) break;
      try {
        if (usefast) {
          if (this.decodeMcuFast(arr, off)) break;
          // Hit a marker on the fast path: back out and redo on the slow path.
          this.pos = pos0; this.cl = cl0; this.loadedBits = loaded0; this.unreadMarker = marker0;
          this.lastDc[0] = dc0; this.lastDc[1] = dc1; this.lastDc[2] = dc2; this.lastDc[3] = dc3;
        }
        this.decodeMcuSlow(arr, off);
        break;
      } catch (e) {
        if (e !== SUSPEND) throw e;
        if (!this.feedMore()) throw new JpegStop('truncated', `file ends inside the image data (byte ${this.len})`);
        this.pos = pos0; this.cl = cl0; this.loadedBits = loaded0; this.unreadMarker = marker0; this.insufficient = false;
        this.lastDc[0] = dc0; this.lastDc[1] = dc1; this.lastDc[2] = dc2; this.lastDc[3] = dc3;
        for (let b = 0; b < this.blocksInMCU; b++) if (arr[b] === this.mcuBuf) arr[b].fill(0, off[b], off[b] + 64);
        usefast = !this.restartInterval;
      }
    }
    if (this.restartInterval) this.restartsToGo--;
  }

  /**
   * decode_mcu_fast with the bit-reader state in locals: FILL_BIT_BUFFER_FAST loads 6 bytes whenever
   * 16 or fewer bits are left, with no suspension check (there are >= 512 bytes per block left).
   * Returns false, committing nothing, if it ran into a marker (the caller redoes the MCU slowly).
   */
  private decodeMcuFast(arr: Int16Array[], off: Int32Array): boolean {
    const d = this.d, ring = this.ring, len = this.len, nat = NATURAL_ORDER;
    let pos = this.pos, cl = this.cl, loaded = this.loadedBits, marker = 0;
    const lastDc = this.lastDcWork;
    lastDc.set(this.lastDc);
    for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
      const ci = this.mcuMembership[blkn];
      const comp = this.scanComps[ci];
      const block = arr[blkn], o = off[blkn];
      let t = this.dcDerived[comp.dcTbl]!;
      for (let k = 0; k < 64; k++) {
        // HUFF_DECODE_FAST
        if (cl <= 16) {
          for (let n = 0; n < 6; n++) {
            const c0 = d[pos++], c1 = pos < len ? d[pos] : 0;
            ring[(loaded >>> 3) & RMASK] = c0;
            loaded = (loaded + 8) & LOADED_MASK;
            cl += 8;
            if (c0 === 0xff) {
              pos++;
              if (c1 !== 0) { marker = c1; pos -= 2; ring[((loaded >>> 3) - 1) & RMASK] = 0; }
            }
          }
        }
        let p = loaded - cl, b = p >>> 3;
        const e = t.lookup[(((ring[b & RMASK] << 8) | ring[(b + 1) & RMASK]) >>> (8 - (p & 7))) & 0xff];
        let nb = e >> 8, s = e & 0xff;
        cl -= nb;
        if (nb > 8) {
          b = p >>> 3;
          let code = ((((ring[b & RMASK] << 16) | (ring[(b + 1) & RMASK] << 8) | ring[(b + 2) & RMASK]) >>> (24 - (p & 7) - nb)) & ((1 << nb) - 1));
          while (code > t.maxcode[nb]) {
            p = loaded - cl; b = p >>> 3;
            code = (code << 1) | ((((ring[b & RMASK] << 8) | ring[(b + 1) & RMASK]) >>> (15 - (p & 7))) & 1);
            cl--;
            nb++;
          }
          s = nb > 16 ? 0 : t.huffval[(code + t.valoffset[nb]) & 0xff];
        }
        // value bits
        let r = 0, size = s;
        if (k === 0) { r = 0; } else { r = s >> 4; size = s & 15; }
        let v = 0;
        if (size) {
          if (cl <= 16) {
            for (let n = 0; n < 6; n++) {
              const c0 = d[pos++], c1 = pos < len ? d[pos] : 0;
              ring[(loaded >>> 3) & RMASK] = c0;
              loaded = (loaded + 8) & LOADED_MASK;
              cl += 8;
              if (c0 === 0xff) {
                pos++;
                if (c1 !== 0) { marker = c1; pos -= 2; ring[((loaded >>> 3) - 1) & RMASK] = 0; }
              }
            }
          }
          p = loaded - cl; b = p >>> 3;
          cl -= size;
          v = ((((ring[b & RMASK] << 16) | (ring[(b + 1) & RMASK] << 8) | ring[(b + 2) & RMASK]) >>> (24 - (p & 7) - size)) & ((1 << size) - 1));
          if (v < 1 << (size - 1)) v = v - (1 << size) + 1;
        }
        if (k === 0) {
          v = (v + lastDc[ci]) | 0;
          lastDc[ci] = v;
          block[o] = v;
          t = this.acDerived[comp.acTbl]!;
        } else if (size) {
          k += r;
          block[o + nat[k]] = v;
        } else {
          if (r !== 15) break;
          k += 15;
        }
      }
    }
    if (marker !== 0) return false;
    this.pos = pos; this.cl = cl; this.loadedBits = loaded;
    this.lastDc.set(lastDc);
    return true;
  }

  private readonly lastDcWork = new Int32Array(4);

  /** decode_mcu_slow: every refill through jpeg_fill_bit_buffer (which may suspend). */
  private decodeMcuSlow(arr: Int16Array[], off: Int32Array): void {
    const nat = NATURAL_ORDER;
    for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
      const ci = this.mcuMembership[blkn];
      const comp = this.scanComps[ci];
      const dct = this.dcDerived[comp.dcTbl]!, act = this.acDerived[comp.acTbl]!;
      const block = arr[blkn], o = off[blkn];
      let s = this.huffDecode(dct);
      if (s) {
        if (this.cl < s) this.fill(s);
        s = extend(this.getBits(s), s);
      }
      s = (s + this.lastDc[ci]) | 0;
      this.lastDc[ci] = s;
      block[o] = s;
      for (let k = 1; k < 64; k++) {
        s = this.huffDecode(act);
        const r = s >> 4;
        s &= 15;
        if (s) {
          k += r;
          if (this.cl < s) this.fill(s);
          block[o + nat[k]] = extend(this.getBits(s), s);
        } else {
          if (r !== 15) break;
          k += 15;
        }
      }
    }
  }

  // ---- progressive Huffman (jdphuff.c) ----------------------------------------------------------
  private updateCoefBits(): void {
    // start_pass_phuff_decoder / jdarith.c start_pass: validation and progression bookkeeping.
    const isDC = this.Ss === 0;
    let bad = false;
    if (isDC) { if (this.Se !== 0) bad = true; }
    else {
      if (this.Ss > this.Se || this.Se >= 64) bad = true;
      if (this.scanComps.length !== 1) bad = true;
    }
    if (this.Ah !== 0 && this.Al !== this.Ah - 1) bad = true;
    if (this.Al > 13) bad = true;
    if (bad) throw corrupt(`invalid progressive parameters Ss=${this.Ss} Se=${this.Se} Ah=${this.Ah} Al=${this.Al}`);
    const cb = this.coefBits!, n = this.comps.length;
    for (const c of this.scanComps) {
      const cur = c.index * 64, prev = (c.index + n) * 64;
      for (let k = Math.min(this.Ss, 1); k <= Math.max(this.Se, 9); k++) {
        cb[prev + k] = this.inputScanNumber > 1 ? cb[cur + k] : 0;
      }
      for (let k = this.Ss; k <= this.Se; k++) cb[cur + k] = this.Al; // a wrong Ah is only a warning
    }
  }

  private startPassProgressive(): void {
    this.updateCoefBits();
    const isDC = this.Ss === 0;
    this.scanComps.forEach((c, ci) => {
      if (isDC) { if (this.Ah === 0) this.dcDerived[c.dcTbl] = this.derived(c.dcTbl, true); }
      else this.acDerived[c.acTbl] = this.derived(c.acTbl, false);
      this.lastDc[ci] = 0;
    });
    this.resetBitReader();
    this.eobrun = 0;
    this.restartsToGo = this.restartInterval;
  }

  /** One MCU of a progressive scan; on suspension it is redone from its starting state. */
  private decodeMcuProgressive(arr: Int16Array[], off: Int32Array): void {
    if (this.restartInterval && this.restartsToGo === 0) this.processRestartHuffman();
    const pos0 = this.pos, cl0 = this.cl, loaded0 = this.loadedBits, marker0 = this.unreadMarker, eob0 = this.eobrun;
    const dc = this.lastDc.slice();
    for (;;) {
      try {
        if (this.Ah === 0) {
          if (this.Ss === 0) this.dcFirst(arr, off); else this.acFirst(arr[0], off[0]);
        } else if (this.Ss === 0) this.dcRefine(arr, off);
        else this.acRefine(arr[0], off[0]);
        break;
      } catch (e) {
        if (e !== SUSPEND) throw e;
        if (!this.feedMore()) throw new JpegStop('truncated', `file ends inside the image data (byte ${this.len})`);
        this.pos = pos0; this.cl = cl0; this.loadedBits = loaded0; this.unreadMarker = marker0; this.eobrun = eob0;
        this.lastDc.set(dc);
        this.insufficient = false;
      }
    }
    if (this.restartInterval) this.restartsToGo--;
  }

  private dcFirst(arr: Int16Array[], off: Int32Array): void {
    if (this.insufficient) return;
    for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
      const ci = this.mcuMembership[blkn];
      const t = this.dcDerived[this.scanComps[ci].dcTbl]!;
      let s = this.huffDecode(t);
      if (s) s = extend(this.bits(s), s);
      const last = this.lastDc[ci];
      if ((last >= 0 && s > 2147483647 - last) || (last < 0 && s < -2147483648 - last)) throw corrupt('DCT coefficient out of range');
      s += last;
      this.lastDc[ci] = s;
      arr[blkn][off[blkn]] = s * (1 << this.Al);
    }
  }

  private acFirst(block: Int16Array, o: number): void {
    if (this.insufficient) return;
    if (this.eobrun > 0) { this.eobrun--; return; }
    const t = this.acDerived[this.scanComps[0].acTbl]!, nat = NATURAL_ORDER, Al = this.Al;
    for (let k = this.Ss; k <= this.Se; k++) {
      let s = this.huffDecode(t);
      let r = s >> 4;
      s &= 15;
      if (s) {
        k += r;
        s = extend(this.bits(s), s);
        block[o + nat[k]] = s * (1 << Al);
      } else if (r === 15) k += 15;
      else {
        let eob = 1 << r;
        if (r) { r = this.bits(r); eob += r; }
        this.eobrun = eob - 1;
        break;
      }
    }
  }

  private dcRefine(arr: Int16Array[], off: Int32Array): void {
    const p1 = 1 << this.Al;
    for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
      if (this.bits(1)) arr[blkn][off[blkn]] |= p1;
    }
  }

  private readonly newnz = new Int32Array(64);

  private acRefine(block: Int16Array, o: number): void {
    if (this.insufficient) return;
    const p1 = 1 << this.Al, m1 = -1 << this.Al;
    const t = this.acDerived[this.scanComps[0].acTbl]!, nat = NATURAL_ORDER, Se = this.Se;
    let numNewnz = 0;
    let k = this.Ss;
    try {
      if (this.eobrun === 0) {
        for (; k <= Se; k++) {
          let s = this.huffDecode(t);
          let r = s >> 4;
          s &= 15;
          if (s) {
            // s != 1 is JWRN_HUFF_BAD_CODE, a warning
            s = this.bits(1) ? p1 : m1;
          } else if (r !== 15) {
            this.eobrun = 1 << r;
            if (r) { r = this.bits(r); this.eobrun += r; }
            break;
          }
          do {
            const pos = o + nat[k];
            if (block[pos] !== 0) {
              if (this.bits(1)) {
                if ((block[pos] & p1) === 0) block[pos] += block[pos] >= 0 ? p1 : m1;
              }
            } else if (--r < 0) break;
            k++;
          } while (k <= Se);
          if (s) {
            const pos = nat[k];
            block[o + pos] = s;
            this.newnz[numNewnz++] = pos;
          }
        }
      }
      if (this.eobrun > 0) {
        for (; k <= Se; k++) {
          const pos = o + nat[k];
          if (block[pos] !== 0 && this.bits(1)) {
            if ((block[pos] & p1) === 0) block[pos] += block[pos] >= 0 ? p1 : m1;
          }
        }
        this.eobrun--;
      }
    } catch (e) {
      while (numNewnz > 0) block[o + this.newnz[--numNewnz]] = 0; // undoit
      throw e;
    }
  }

  // ---- arithmetic decoding (jdarith.c) ----------------------------------------------------------
  private startPassArith(): void {
    if (this.progressive) this.updateCoefBits();
    // (a sequential scan with odd Ss/Se/Ah/Al is only JWRN_NOT_SEQUENTIAL)
    this.scanComps.forEach((c, ci) => {
      if (!this.progressive || (this.Ss === 0 && this.Ah === 0)) {
        if (c.dcTbl >= 16) throw corrupt(`arithmetic table 0x${hex2(c.dcTbl)} was not defined`);
        (this.dcStats[c.dcTbl] ??= new Uint8Array(64)).fill(0);
        this.lastDc[ci] = 0;
        this.dcContext[ci] = 0;
      }
      if (!this.progressive || this.Ss) {
        if (c.acTbl >= 16) throw corrupt(`arithmetic table 0x${hex2(c.acTbl)} was not defined`);
        (this.acStats[c.acTbl] ??= new Uint8Array(256)).fill(0);
      }
    });
    this.ac = 0; this.aa = 0; this.act = -16;
    this.insufficient = false;
    this.restartsToGo = this.restartInterval;
  }

  /** get_byte: the arithmetic decoder cannot suspend, so bytes Pillow has not fed yet are an error. */
  private arithByte(): number {
    if (this.pos >= this.bufEnd) throw corrupt('suspension not allowed here (arithmetic-coded data beyond the bytes available)');
    return this.d[this.pos++];
  }

  private arithDecode(st: Uint8Array, si: number): number {
    while (this.aa < 0x8000) {
      if (--this.act < 0) {
        let data = 0;
        if (this.unreadMarker === 0) {
          data = this.arithByte();
          if (data === 0xff) {
            do data = this.arithByte(); while (data === 0xff);
            if (data === 0) data = 0xff;
            else { this.unreadMarker = data; data = 0; }
          }
        }
        this.ac = this.ac * 256 + data; // (c << 8) | data; stays below 2^32 (c < a << ct)
        if ((this.act += 8) < 0) {
          if (++this.act === 0) this.aa = 0x8000;
        }
      }
      this.aa <<= 1;
    }
    let sv = st[si];
    let qe = ARITH_TABLE[sv & 0x7f];
    const nl = qe & 0xff; qe >>= 8;
    const nm = qe & 0xff; qe >>= 8;
    let temp = this.aa - qe;
    this.aa = temp;
    temp = temp * 2 ** this.act;
    if (this.ac >= temp) {
      this.ac -= temp;
      if (this.aa < qe) { this.aa = qe; st[si] = (sv & 0x80) ^ nm; }
      else { this.aa = qe; st[si] = (sv & 0x80) ^ nl; sv ^= 0x80; }
    } else if (this.aa < 0x8000) {
      if (this.aa < qe) { st[si] = (sv & 0x80) ^ nl; sv ^= 0x80; }
      else st[si] = (sv & 0x80) ^ nm;
    }
    return sv >> 7;
  }

  private processRestartArith(): void {
    this.readRestartMarker();
    for (let ci = 0; ci < this.scanComps.length; ci++) {
      const c = this.scanComps[ci];
      if (!this.progressive || (this.Ss === 0 && this.Ah === 0)) {
        this.dcStats[c.dcTbl].fill(0);
        this.lastDc[ci] = 0;
        this.dcContext[ci] = 0;
      }
      if (!this.progressive || this.Ss) this.acStats[c.acTbl].fill(0);
    }
    this.ac = 0; this.aa = 0; this.act = -16;
    this.restartsToGo = this.restartInterval;
  }

  private decodeMcuArith(arr: Int16Array[], off: Int32Array): void {
    if (this.restartInterval) {
      if (this.restartsToGo === 0) this.processRestartArith();
      this.restartsToGo--;
    }
    if (this.progressive) {
      if (this.Ss === 0 && this.Ah !== 0) { // DC refine runs even after an error
        const p1 = 1 << this.Al;
        for (let blkn = 0; blkn < this.blocksInMCU; blkn++) if (this.arithDecode(this.fixedBin, 0)) arr[blkn][off[blkn]] |= p1;
        return;
      }
      if (this.act === -1) return;
      if (this.Ss === 0) {
        for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
          const ci = this.mcuMembership[blkn];
          if (!this.arithDcDiff(ci)) return;
          arr[blkn][off[blkn]] = this.lastDc[ci] * (1 << this.Al);
        }
      } else if (this.Ah === 0) this.arithAcFirst(arr[0], off[0]);
      else this.arithAcRefine(arr[0], off[0]);
      return;
    }
    if (this.act === -1) return;
    for (let blkn = 0; blkn < this.blocksInMCU; blkn++) {
      const ci = this.mcuMembership[blkn];
      if (!this.arithDcDiff(ci)) return;
      const block = arr[blkn], o = off[blkn];
      block[o] = this.lastDc[ci];
      if (!this.arithAcRun(block, o, 1, 63, this.scanComps[ci].acTbl, 0)) return;
    }
  }

  /** Decode_DC_DIFF and update last_dc_val (F.19-F.24). false = error (ct = -1). */
  private arithDcDiff(ci: number): boolean {
    const tbl = this.scanComps[ci].dcTbl;
    const stats = this.dcStats[tbl];
    let si = this.dcContext[ci];
    if (this.arithDecode(stats, si) === 0) { this.dcContext[ci] = 0; return true; }
    const sign = this.arithDecode(stats, si + 1);
    si += 2 + sign;
    let m = this.arithDecode(stats, si);
    if (m !== 0) {
      si = 20;
      while (this.arithDecode(stats, si)) {
        if ((m <<= 1) === 0x8000) { this.act = -1; return false; } // JWRN_ARITH_BAD_CODE
        si += 1;
      }
    }
    if (m < (1 << this.arithL[tbl]) >> 1) this.dcContext[ci] = 0;
    else if (m > (1 << this.arithU[tbl]) >> 1) this.dcContext[ci] = 12 + sign * 4;
    else this.dcContext[ci] = 4 + sign * 4;
    let v = m;
    si += 14;
    while ((m >>= 1)) if (this.arithDecode(stats, si)) v |= m;
    v += 1;
    if (sign) v = -v;
    this.lastDc[ci] = (this.lastDc[ci] + v) & 0xffff;
    return true;
  }

  /** AC coefficients k = Ss..Se (F.20). false = error. */
  private arithAcRun(block: Int16Array, o: number, Ss: number, Se: number, tbl: number, Al: number): boolean {
    const stats = this.acStats[tbl], nat = NATURAL_ORDER;
    for (let k = Ss; k <= Se; k++) {
      let si = 3 * (k - 1);
      if (this.arithDecode(stats, si)) break; // EOB
      while (this.arithDecode(stats, si + 1) === 0) {
        si += 3;
        k++;
        if (k > Se) { this.act = -1; return false; }
      }
      const sign = this.arithDecode(this.fixedBin, 0);
      si += 2;
      let m = this.arithDecode(stats, si);
      if (m !== 0 && this.arithDecode(stats, si)) {
        m <<= 1;
        si = k <= this.arithK[tbl] ? 189 : 217;
        while (this.arithDecode(stats, si)) {
          if ((m <<= 1) === 0x8000) { this.act = -1; return false; }
          si += 1;
        }
      }
      let v = m;
      si += 14;
      while ((m >>= 1)) if (this.arithDecode(stats, si)) v |= m;
      v += 1;
      if (sign) v = -v;
      block[o + nat[k]] = v * (1 << Al);
    }
    return true;
  }

  private arithAcFirst(block: Int16Array, o: number): void {
    this.arithAcRun(block, o, this.Ss, this.Se, this.scanComps[0].acTbl, this.Al);
  }

  private arithAcRefine(block: Int16Array, o: number): void {
    const tbl = this.scanComps[0].acTbl, stats = this.acStats[tbl], nat = NATURAL_ORDER;
    const p1 = 1 << this.Al, m1 = -1 << this.Al;
    let kex = this.Se;
    for (; kex > 0; kex--) if (block[o + nat[kex]]) break;
    for (let k = this.Ss; k <= this.Se; k++) {
      let si = 3 * (k - 1);
      if (k > kex && this.arithDecode(stats, si)) break;
      for (;;) {
        const pos = o + nat[k];
        if (block[pos]) {
          if (this.arithDecode(stats, si + 2)) block[pos] += block[pos] < 0 ? m1 : p1;
          break;
        }
        if (this.arithDecode(stats, si + 1)) {
          block[pos] = this.arithDecode(this.fixedBin, 0) ? m1 : p1;
          break;
        }
        si += 3;
        k++;
        if (k > this.Se) { this.act = -1; return; }
      }
    }
  }

  // ---- coefficient controller (jdcoefct.c) ----------------------------------------------------------
  private readonly mcuBuf = new Int16Array(10 * 64);
  private readonly mcuArr: Int16Array[] = new Array(10);
  private readonly mcuOff = new Int32Array(10);

  private decodeMcu(): void {
    if (this.arithmetic) this.decodeMcuArith(this.mcuArr, this.mcuOff);
    else if (this.progressive) this.decodeMcuProgressive(this.mcuArr, this.mcuOff);
    else this.decodeMcuSequential(this.mcuArr, this.mcuOff);
  }

  /** consume_data for every iMCU row of the current scan (multi-scan files). */
  private consumeScan(): void {
    const sc = this.scanComps;
    for (let row = 0; row < this.totalIMCURows; row++) {
      this.inputIMCURow = row;
      const mcuRows = sc.length > 1 ? 1 : row < this.totalIMCURows - 1 ? sc[0].v : sc[0].lastRowHeight;
      for (let yoff = 0; yoff < mcuRows; yoff++) {
        for (let col = 0; col < this.mcusPerRow; col++) {
          let blkn = 0;
          for (const c of sc) {
            const startCol = col * c.mcuWidth;
            for (let yi = 0; yi < c.mcuHeight; yi++) {
              const brow = row * c.v + yi + yoff;
              for (let xi = 0; xi < c.mcuWidth; xi++) {
                this.mcuArr[blkn] = c.coef!;
                this.mcuOff[blkn++] = (brow * c.blocksWide + startCol + xi) * 64;
              }
            }
          }
          if (!this.insufficient) this.lastGoodIMCURow = row;
          this.decodeMcu();
        }
      }
    }
  }

  /** decompress_onepass: decode each iMCU row and hand it to the output stage. */
  private decodeSingleScan(output: OutputStage): void {
    const sc = this.scanComps;
    const lastRow = this.totalIMCURows - 1;
    const planes: Uint8Array[] = sc.map(() => new Uint8Array(0));
    const strides = sc.map((c) => output.stride(c.index));
    for (let row = 0; row <= lastRow; row++) {
      this.inputIMCURow = row;
      for (let i = 0; i < sc.length; i++) planes[i] = output.rowBuffer(sc[i].index, row);
      const mcuRows = sc.length > 1 ? 1 : row < lastRow ? sc[0].v : sc[0].lastRowHeight;
      for (let yoff = 0; yoff < mcuRows; yoff++) {
        for (let col = 0; col < this.mcusPerRow; col++) {
          this.mcuBuf.fill(0, 0, this.blocksInMCU * 64);
          for (let b = 0; b < this.blocksInMCU; b++) { this.mcuArr[b] = this.mcuBuf; this.mcuOff[b] = b * 64; }
          this.decodeMcu();
          let blkn = 0;
          for (let i = 0; i < sc.length; i++) {
            const c = sc[i];
            const useful = col < this.mcusPerRow - 1 ? c.mcuWidth : c.lastColWidth;
            const plane = planes[i], stride = strides[i];
            for (let yi = 0; yi < c.mcuHeight; yi++) {
              if (row < lastRow || yoff + yi < c.lastRowHeight) {
                const rowOff = (yoff + yi) * 8 * stride;
                for (let xi = 0; xi < useful; xi++) {
                  idctIslow(this.mcuBuf, (blkn + xi) * 64, c.quant!, plane, rowOff + (col * c.mcuWidth + xi) * 8, stride);
                }
              }
              blkn += c.mcuWidth;
            }
          }
        }
      }
      output.pushIMCURow(row);
    }
  }

  /** decompress_data / decompress_smooth_data over the whole-image coefficient arrays. */
  private outputMultiScan(output: OutputStage): void {
    const latch = this.progressive ? smoothingLatch(this.comps, this.coefBits!, this.inputScanNumber) : null;
    const zero = new Int16Array(64);
    for (let row = 0; row < this.totalIMCURows; row++) {
      for (const c of this.comps) {
        const plane = output.rowBuffer(c.index, row);
        const stride = output.stride(c.index);
        // A component with no scan keeps a zero quantisation table (jddctmgr.c), i.e. mid-grey.
        const q = c.quant ?? zero;
        const blockRows = row < this.totalIMCURows - 1 ? c.v : c.heightInBlocks % c.v || c.v;
        if (latch) smoothRow(c, row, blockRows, plane, stride, latch, this.comps.length, this.lastGoodIMCURow, this.totalIMCURows);
        else {
          for (let br = 0; br < blockRows; br++) {
            const base = (row * c.v + br) * c.blocksWide;
            for (let bx = 0; bx < c.widthInBlocks; bx++) {
              idctIslow(c.coef!, (base + bx) * 64, q, plane, br * 8 * stride + bx * 8, stride);
            }
          }
        }
      }
      output.pushIMCURow(row);
    }
  }

}

function hex2(v: number): string {
  return v.toString(16).toUpperCase().padStart(2, '0');
}
