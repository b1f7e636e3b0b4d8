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

const ws = new Int32Array(64); // pass-1 output (int16 values)

/**
 * Pass 1 (DODCT with CONST_BITS - PASS1_BITS = 11) on column `col`: dequantises with pmullw
 * (w16(coef * q)) and writes the packssdw-saturated results to ws[col + 8k].
 */
function column(coef: Int16Array, c0: number, q: Int16Array, col: number): void {
  const i = c0 + col;
  const in0 = w16(coef[i] * q[col]), in1 = w16(coef[i + 8] * q[col + 8]), in2 = w16(coef[i + 16] * q[col + 16]);
  const in3 = w16(coef[i + 24] * q[col + 24]), in4 = w16(coef[i + 32] * q[col + 32]), in5 = w16(coef[i + 40] * q[col + 40]);
  const in6 = w16(coef[i + 48] * q[col + 48]), in7 = w16(coef[i + 56] * q[col + 56]);
  if (in1 === 0 && in2 === 0 && in3 === 0 && in4 === 0 && in5 === 0 && in6 === 0 && in7 === 0) {
    // Not a branch of the SIMD code, but what its DODCT gives when in1..in7 are 0:
    // every output is sat16((in0 * 8192 + 1024) >> 11) = sat16(in0 * 4).
    const v = sat16(in0 * 4);
    ws[col] = v; ws[col + 8] = v; ws[col + 16] = v; ws[col + 24] = v; ws[col + 32] = v; ws[col + 40] = v; ws[col + 48] = v; ws[col + 56] = v;
    return;
  }
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
  const R = 1024; // descale by 2^11 with rounding
  ws[col] = sat16((((tmp10 + t3) | 0) + R | 0) >> 11);
  ws[col + 56] = sat16((((tmp10 - t3) | 0) + R | 0) >> 11);
  ws[col + 8] = sat16((((tmp11 + t2) | 0) + R | 0) >> 11);
  ws[col + 48] = sat16((((tmp11 - t2) | 0) + R | 0) >> 11);
  ws[col + 16] = sat16((((tmp12 + t1) | 0) + R | 0) >> 11);
  ws[col + 40] = sat16((((tmp12 - t1) | 0) + R | 0) >> 11);
  ws[col + 24] = sat16((((tmp13 + t0) | 0) + R | 0) >> 11);
  ws[col + 32] = sat16((((tmp13 - t0) | 0) + R | 0) >> 11);
}

/** packssdw, then packsswb and + CENTERJSAMPLE: a pass-2 value to a sample. */
const sample = (x: number) => (x < -128 ? 0 : x > 127 ? 255 : x + 128);

/** Pass 2 (DODCT with CONST_BITS + PASS1_BITS + 3 = 18) on workspace row w, into 8 samples at out[o..]. */
function row(w: number, out: Uint8Array, o: number): void {
  const in0 = ws[w], in1 = ws[w + 1], in2 = ws[w + 2], in3 = ws[w + 3], in4 = ws[w + 4], in5 = ws[w + 5], in6 = ws[w + 6], in7 = ws[w + 7];
  if (in1 === 0 && in2 === 0 && in3 === 0 && in4 === 0 && in5 === 0 && in6 === 0 && in7 === 0) {
    // As in column(): sat16((in0 * 8192 + 2^17) >> 18) for all eight.
    const px = sample((in0 * 8192 + 131072) >> 18);
    out[o] = px; out[o + 1] = px; out[o + 2] = px; out[o + 3] = px; out[o + 4] = px; out[o + 5] = px; out[o + 6] = px; out[o + 7] = px;
    return;
  }
  const tmp3 = (in2 * K_F130 + in6 * F_0_541) | 0;
  const tmp2 = (in2 * F_0_541 + in6 * K_MF130) | 0;
  const tmp0 = w16(in0 + in4) * 8192;
  const tmp1 = w16(in0 - in4) * 8192;
  const tmp10 = (tmp0 + tmp3) | 0, tmp13 = (tmp0 - tmp3) | 0, tmp11 = (tmp1 + tmp2) | 0, tmp12 = (tmp1 - tmp2) | 0;
  const z3 = w16(in7 + in3), z4 = w16(in5 + in1);
  const z3p = (z3 * K_MF078 + z4 * F_1_175) | 0;
  const z4p = (z3 * F_1_175 + z4 * K_F078) | 0;
  const t0 = (((in7 * K_MF060 - in1 * F_0_899) | 0) + z3p) | 0;
  const t1 = (((in5 * K_MF050 - in3 * F_2_562) | 0) + z4p) | 0;
  const t3 = (((-in7 * F_0_899 + in1 * K_F060) | 0) + z4p) | 0;
  const t2 = (((-in5 * F_2_562 + in3 * K_F050) | 0) + z3p) | 0;
  const R = 131072; // descale by 2^18 with rounding; sat16 is implied by the sample clamp
  out[o] = sample((((tmp10 + t3) | 0) + R | 0) >> 18);
  out[o + 7] = sample((((tmp10 - t3) | 0) + R | 0) >> 18);
  out[o + 1] = sample((((tmp11 + t2) | 0) + R | 0) >> 18);
  out[o + 6] = sample((((tmp11 - t2) | 0) + R | 0) >> 18);
  out[o + 2] = sample((((tmp12 + t1) | 0) + R | 0) >> 18);
  out[o + 5] = sample((((tmp12 - t1) | 0) + R | 0) >> 18);
  out[o + 3] = sample((((tmp13 + t0) | 0) + R | 0) >> 18);
  out[o + 4] = sample((((tmp13 - t0) | 0) + R | 0) >> 18);
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
    // The SIMD DC-only path: rows 1-7 of the whole block are zero.
    for (let col = 0; col < 8; col++) {
      const dc = w16(w16(coef[c0 + col] * q[col]) * 4); // pmullw, then psllw by PASS1_BITS
      ws[col] = dc; ws[col + 8] = dc; ws[col + 16] = dc; ws[col + 24] = dc; ws[col + 32] = dc; ws[col + 40] = dc; ws[col + 48] = dc; ws[col + 56] = dc;
    }
  } else {
    for (let col = 0; col < 8; col++) column(coef, c0, q, col);
  }
  for (let r = 0, o = o0; r < 8; r++, o += stride) row(r * 8, out, o);
}
