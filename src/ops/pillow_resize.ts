// Pillow's 8-bit bicubic resize, bit-exact: `img.resize((w, h), Image.BICUBIC)` on an RGB image
// (Pillow 10.1.0 src/libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner). This is what torchvision's
// `Resize((448,448), BICUBIC)` does to a PIL image in MiniCPM-V v1's transform (SPEC §5).
// The slow loop oracle is `pillow_resize_slow.ts`.

/** HWC interleaved RGB uint8 (structurally the same as src/image RgbImage; ops import nothing from image/). */
export interface Rgb8 { width: number; height: number; data: Uint8Array }

// Resample.c: PRECISION_BITS = 32 - 8 - 2. Weights are 22-bit fixed point, results `clip8(acc >> 22)`.
export const PRECISION_BITS = 22;

/** bicubic_filter with a = -0.5 (Resample.c, written with the same operation order). */
export function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

export interface Coeffs {
  ksize: number; // coefficients per output sample (row stride of `k`)
  bounds: Int32Array; // [xmin, count] per output sample
  k: Int32Array; // [outSize * ksize] fixed-point weights
}

/**
 * precompute_coeffs + normalize_coeffs_8bpc for box (0, inSize): for output x,
 * center = (x + 0.5) * scale, support = 2 * max(scale, 1), window [(int)(center - support + 0.5),
 * (int)(center + support + 0.5)) clipped to the input, weights filter((i - center + 0.5) / filterscale)
 * normalised to sum 1, then `(int)(w * 2^22 +- 0.5)` (rounded away from zero).
 */
export function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const ksize = kernelSize(inSize, outSize);
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    coeffsFor(inSize, outSize, xx, w, k.subarray(xx * ksize, (xx + 1) * ksize), bounds, xx * 2);
  }
  return { ksize, bounds, k };
}

function kernelSize(inSize: number, outSize: number): number {
  const filterscale = Math.max(inSize / outSize, 1.0);
  return Math.ceil(2.0 * filterscale) * 2 + 1; // support = BICUBIC.support (2.0) * filterscale
}

/** The window and integer weights of output pixel xx (one iteration of precompute_coeffs' loop). */
function coeffsFor(inSize: number, outSize: number, xx: number, w: Float64Array, k: Int32Array, bounds: Int32Array, bo: number): void {
  const scale = inSize / outSize; // (double)(in1 - in0) / outSize; in0 = 0, in1 = inSize
  const filterscale = Math.max(scale, 1.0);
  const support = 2.0 * filterscale;
  const center = (xx + 0.5) * scale;
  const ss = 1.0 / filterscale;
  const xmin = Math.max(Math.trunc(center - support + 0.5), 0); // C (int) truncates toward zero
  const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
  let ww = 0.0;
  for (let x = 0; x < xmax; x++) {
    w[x] = bicubicFilter((x + xmin - center + 0.5) * ss);
    ww += w[x];
  }
  for (let x = 0; x < xmax; x++) {
    const v = ww !== 0.0 ? w[x] / ww : w[x];
    k[x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
  }
  bounds[bo] = xmin;
  bounds[bo + 1] = xmax;
}

// Pillow keeps outSize * ksize weights per pass; for an extreme aspect ratio (1 x 178,956,970 into
// 448) that is gigabytes. Past this many weights we compute each output pixel's weights when it is
// used instead (the same numbers, so the same bytes).
const MAX_TABLE = 1 << 24;

/** Window bounds of every output pixel, without the weights (they are computed when used). */
function windowsOnly(inSize: number, outSize: number): Coeffs {
  const ksize = kernelSize(inSize, outSize);
  const bounds = new Int32Array(outSize * 2);
  const w = new Float64Array(ksize), k = new Int32Array(ksize);
  for (let xx = 0; xx < outSize; xx++) coeffsFor(inSize, outSize, xx, w, k, bounds, xx * 2);
  return { ksize, bounds, k: new Int32Array(0) };
}

// clip8: `_clip8_lookups[(acc >> 22) + 640]`, i.e. clamp to [0, 255] (the table covers -640..639).
const clip8 = (acc: number): number => {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};
const HALF = 1 << (PRECISION_BITS - 1); // accumulators start at 1 << 21 (rounding)

/**
 * Resizes an RGB uint8 image like Pillow's BICUBIC: horizontal pass first into a uint8 temporary
 * (only over the rows the vertical pass reads), then the vertical pass; a pass is skipped when that
 * dimension already matches, and an image already at the target size is copied.
 */
export function pillowResizeBicubic(img: Rgb8, outW: number, outH: number): Rgb8 {
  const { width: inW, height: inH, data } = img;
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) {
    throw new RangeError(`pillowResizeBicubic: output size must be positive integers, got ${outW}x${outH}`);
  }
  if (inW < 1 || inH < 1 || data.length !== inW * inH * 3) {
    throw new RangeError(`pillowResizeBicubic: input must be ${inW}x${inH}x3 uint8, got ${data.length} bytes`);
  }
  if (inW === outW && inH === outH) return { width: outW, height: outH, data: data.slice() };

  const vertOnTheFly = outH * kernelSize(inH, outH) > MAX_TABLE;
  const vert = vertOnTheFly ? windowsOnly(inH, outH) : precomputeCoeffs(inH, outH);
  let src = data;
  let srcW = inW;
  let rowOffset = 0; // first input row the vertical pass reads (ybox_first)
  if (outW !== inW) {
    const yFirst = vert.bounds[0];
    const yLast = vert.bounds[(outH - 1) * 2] + vert.bounds[(outH - 1) * 2 + 1];
    const tmp = new Uint8Array(outW * (yLast - yFirst) * 3);
    const onTheFly = outW * kernelSize(inW, outW) > MAX_TABLE;
    const { ksize, bounds, k } = onTheFly ? windowsOnly(inW, outW) : precomputeCoeffs(inW, outW);
    if (!onTheFly) {
      for (let y = yFirst; y < yLast; y++) {
        const rowIn = y * inW * 3;
        const rowOut = (y - yFirst) * outW * 3;
        for (let xx = 0; xx < outW; xx++) {
          const xmin = bounds[xx * 2], n = bounds[xx * 2 + 1], kb = xx * ksize;
          let s0 = HALF, s1 = HALF, s2 = HALF;
          for (let x = 0, p = rowIn + xmin * 3; x < n; x++, p += 3) {
            const w = k[kb + x];
            s0 += data[p] * w;
            s1 += data[p + 1] * w;
            s2 += data[p + 2] * w;
          }
          tmp[rowOut + xx * 3] = clip8(s0);
          tmp[rowOut + xx * 3 + 1] = clip8(s1);
          tmp[rowOut + xx * 3 + 2] = clip8(s2);
        }
      }
    } else {
      // The same sums with the weights of one output column computed once and applied to every row.
      const w = new Float64Array(ksize), kc = new Int32Array(ksize);
      for (let xx = 0; xx < outW; xx++) {
        coeffsFor(inW, outW, xx, w, kc, bounds, xx * 2);
        const xmin = bounds[xx * 2], n = bounds[xx * 2 + 1];
        for (let y = yFirst; y < yLast; y++) {
          let s0 = HALF, s1 = HALF, s2 = HALF;
          for (let x = 0, p = (y * inW + xmin) * 3; x < n; x++, p += 3) {
            const wk = kc[x];
            s0 += data[p] * wk;
            s1 += data[p + 1] * wk;
            s2 += data[p + 2] * wk;
          }
          const o = ((y - yFirst) * outW + xx) * 3;
          tmp[o] = clip8(s0);
          tmp[o + 1] = clip8(s1);
          tmp[o + 2] = clip8(s2);
        }
      }
    }
    src = tmp;
    srcW = outW;
    rowOffset = yFirst;
  }
  if (outH === inH) return { width: outW, height: outH, data: src };

  const out = new Uint8Array(outW * outH * 3);
  const stride = srcW * 3;
  const kv = vertOnTheFly ? new Int32Array(vert.ksize) : vert.k, wv = new Float64Array(vertOnTheFly ? vert.ksize : 0);
  for (let yy = 0; yy < outH; yy++) {
    if (vertOnTheFly) coeffsFor(inH, outH, yy, wv, kv, vert.bounds, yy * 2);
    const ymin = vert.bounds[yy * 2] - rowOffset, n = vert.bounds[yy * 2 + 1], kb = vertOnTheFly ? 0 : yy * vert.ksize;
    const rowOut = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = HALF;
      for (let y = 0, p = ymin * stride + i; y < n; y++, p += stride) s += src[p] * kv[kb + y];
      out[rowOut + i] = clip8(s);
    }
  }
  return { width: outW, height: outH, data: out };
}
