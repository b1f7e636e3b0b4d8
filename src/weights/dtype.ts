// Scalar conversions between float32 and the 16-bit float formats stored in checkpoints.
// The real MiniCPM-V checkpoint is bf16 (SPEC §1); tiny fixtures are f32; f16 is what fp16 users export.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign. */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  // Same rounding as torch's c10::round_to_nearest_even: add 0x7fff plus the lowest kept bit.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits -> IEEE binary16 bits, round to nearest even (subnormals, overflow to Inf, NaN kept). */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127; // unbiased exponent
  if (e < -25) return sign; // below half the smallest subnormal (2^-25): rounds to zero
  if (e < -14) {
    // Subnormal half: value = q * 2^-24 with q = m * 2^(e+1) where m has the implicit bit.
    const m = mant | 0x800000;
    const s = -e - 1; // 14..24
    let q = m >>> s;
    const r = m & ((1 << s) - 1);
    const half = 1 << (s - 1);
    if (r > half || (r === half && (q & 1) === 1)) q++; // q may carry into the smallest normal: still correct
    return sign | q;
  }
  let q = ((e + 15) << 10) | (mant >>> 13);
  const r = mant & 0x1fff;
  if (r > 0x1000 || (r === 0x1000 && (q & 1) === 1)) q++;
  if (q >= 0x7c00) return sign | 0x7c00; // overflow (including rounding up past 65504) -> Inf
  return sign | q;
}

let f16Table: Float32Array | undefined;
/** All 65536 binary16 values as float32 (exact: every half is representable in single precision). */
export function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = ((h & 0x8000) << 16) | 0x7f800000 | (mant << 13); // Inf / NaN with payload
    else if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

export function f32ToBf16Value(x: number): number {
  f32[0] = x;
  return f32BitsToBf16(u32[0]);
}
export function f32ToF16Value(x: number): number {
  f32[0] = x;
  return f32BitsToF16(u32[0]);
}
export function bf16ToF32Value(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}
