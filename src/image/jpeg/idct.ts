// libjpeg-turbo's accurate integer inverse DCT ("islow", the default JDCT_ISLOW Pillow leaves set),
// in the form Pillow's x86-64 wheels actually run it: the SSE2/AVX2 version
// (simd/x86_64/jidctint-sse2.asm and jidctint-avx2.asm, which compute the same thing).
//
// It is the algorithm of src/jidctint.c (CONST_BITS = 13, PASS1_BITS = 2, the same constants and
// rounding) laid out for 16-bit lanes, and for every block a valid 8-bit JPEG can produce the two
// agree. They part only on garbage coefficients (a damaged file that libjpeg-turbo still decodes, with
// warnings): there the SIMD code
//   - dequantises with a 16-bit multiply (pmullw: the low 16 bits of coef * quant),
//   - forms in0 +- in4, in7 + in3 and in5 + in1 as 16-bit sums (paddw/psubw wrap),
//   - multiplies pairs with pmaddwd (32-bit sums that wrap) and keeps 32-bit intermediates,
//   - saturates each pass's output to int16 (packssdw) and the final samples to -128..127 before
//     adding 128 (packsswb, paddb), where the C code masks with the 1024-entry range-limit table,
//   - takes the DC-only shortcut only when rows 1-7 of the whole block are zero (the C code tests
//     each column), and has no zero-row shortcut in the second pass.
// Pillow's own test file hopper_bad_exif.jpg has such blocks; decoding it the C way differs from
// Pillow in 6895 pixels, this way in none.

const F_0_298 = 2446, F_0_390 = 3196, F_0_541 = 4433, F_0_765 = 6270, F_0_899 = 7373, F_1_175 = 9633;
const F_1_501 = 12299, F_1_847 = 15137, F_1_961 = 16069, F_2_053 = 16819, F_2_562 = 20995, F_3_072 = 25172;
// The paired constants of the SIMD code (jidctint-avx2.asm PW_* tables).
const K_F130 = F_0_541 + F_0_765, K_MF130 = F_0_541 - F_1_847;
const K_MF078 = F_1_175 - F_1_961, K_F078 = F_1_175 - F_0_390;
const K_MF060 = F_0_298 - F_0_899, K_MF050 = F_2_053 - F_2_562, K_F060 = F_1_501 - F_0_899, K_F050 = F_3_072 - F_2_562;

const w16 = (x: number) => (x << 16) >> 16; // 16-bit wraparound
const sat16 = (x: number) => (x < -32768 ? -32768 : x > 32767 ? 32767 : x); // packssdw

const deq = new Int32Array(64); // dequantised coefficients (int16 values)
const ws = new Int32Array(64); // pass-1 output (int16 values)
const res = new Int32Array(8); // one pass-2 row

/**
 * One 1-D 8-point pass (the DODCT macro): reads 8 int16 inputs src[si + k*step], descales by 2^shift and
 * writes the packssdw-saturated results to dst[di + k*step].
 */
function dodct(src: Int32Array, si: number, dst: Int32Array, di: number, step: number, shift: number): void {
  const in0 = src[si], in1 = src[si + step], in2 = src[si + 2 * step], in3 = src[si + 3 * step];
  const in4 = src[si + 4 * step], in5 = src[si + 5 * step], in6 = src[si + 6 * step], in7 = src[si + 7 * step];
  const round = 1 << (shift - 1);
  // Even part.
  const tmp3 = (in2 * K_F130 + in6 * F_0_541) | 0;
  const tmp2 = (in2 * F_0_541 + in6 * K_MF130) | 0;
  const tmp0 = w16(in0 + in4) * 8192;
  const tmp1 = w16(in0 - in4) * 8192;
  const tmp10 = (tmp0 + tmp3) | 0, tmp13 = (tmp0 - tmp3) | 0, tmp11 = (tmp1 + tmp2) | 0, tmp12 = (tmp1 - tmp2) | 0;
  // Odd part.
  const z3 = w16(in7 + in3), z4 = w16(in5 + in1);
  const z3p = (z3 * K_MF078 + z4 * F_1_175) | 0;
  const z4p = (z3 * F_1_175 + z4 * K_F078) | 0;
  const t0 = (((in7 * K_MF060 - in1 * F_0_899) | 0) + z3p) | 0;
  const t1 = (((in5 * K_MF050 - in3 * F_2_562) | 0) + z4p) | 0;
  const t3 = (((-in7 * F_0_899 + in1 * K_F060) | 0) + z4p) | 0;
  const t2 = (((-in5 * F_2_562 + in3 * K_F050) | 0) + z3p) | 0;
  dst[di] = sat16((((tmp10 + t3) | 0) + round | 0) >> shift);
  dst[di + 7 * step] = sat16((((tmp10 - t3) | 0) + round | 0) >> shift);
  dst[di + step] = sat16((((tmp11 + t2) | 0) + round | 0) >> shift);
  dst[di + 6 * step] = sat16((((tmp11 - t2) | 0) + round | 0) >> shift);
  dst[di + 2 * step] = sat16((((tmp12 + t1) | 0) + round | 0) >> shift);
  dst[di + 5 * step] = sat16((((tmp12 - t1) | 0) + round | 0) >> shift);
  dst[di + 3 * step] = sat16((((tmp13 + t0) | 0) + round | 0) >> shift);
  dst[di + 4 * step] = sat16((((tmp13 - t0) | 0) + round | 0) >> shift);
}

/**
 * Inverse DCT of one 8x8 block.
 * coef: 64 coefficients in natural order at coef[c0..c0+63] (int16); q: the component's quantisers
 * as int16 in natural order (ISLOW_MULT_TYPE); writes 8 rows of 8 samples at out[o0 + r*stride + c].
 */
export function idctIslow(coef: Int16Array, c0: number, q: Int16Array, out: Uint8Array, o0: number, stride: number): void {
  let acZero = true;
  for (let i = 8; i < 64; i++) if (coef[c0 + i] !== 0) { acZero = false; break; }
  if (acZero) {
    for (let col = 0; col < 8; col++) {
      const dc = w16(w16(coef[c0 + col] * q[col]) * 4); // pmullw, then psllw by PASS1_BITS
      for (let r = 0; r < 64; r += 8) ws[r + col] = dc;
    }
  } else {
    for (let i = 0; i < 64; i++) deq[i] = w16(coef[c0 + i] * q[i]); // pmullw
    for (let col = 0; col < 8; col++) dodct(deq, col, ws, col, 8, 11); // CONST_BITS - PASS1_BITS
  }
  for (let row = 0; row < 8; row++) {
    dodct(ws, row * 8, res, 0, 1, 18); // CONST_BITS + PASS1_BITS + 3
    const o = o0 + row * stride;
    for (let c = 0; c < 8; c++) {
      const v = res[c];
      out[o + c] = (v < -128 ? -128 : v > 127 ? 127 : v) + 128; // packsswb + CENTERJSAMPLE
    }
  }
}
