// The two bicubic resamplers PyTorch applies to position tables, as explicit
// per-axis weight matrices. Both are separable and linear, so a 2-D resize is
// `Y = Mh · X · Mwᵀ` per channel.
//
// 1. Antialiased bicubic, a = -0.5 (timm `resample_abs_pos_embed`:
//    `F.interpolate(mode='bicubic', antialias=True, align_corners=False)`), used
//    for `vpm.pos_embed` 27x27 -> 32x32. PyTorch aten/src/ATen/native/cpu/
//    UpSampleKernel.cpp `_compute_indices_min_size_weights_aa` and
//    `HelperInterpCubic::aa_filter`: window `center ± support` with
//    support = 2·max(scale, 1), weights renormalized to sum 1.
// 2. Plain bicubic, A = -0.75 (resampler `get_abs_pos`: `F.interpolate(mode=
//    'bicubic', align_corners=False)`), used for `resampler.pos_embed` 8x8 ->
//    32x32. aten UpSample.h `get_cubic_upsample_coefficients`: four taps at
//    floor(src)-1 .. floor(src)+2, indices clamped to the edge.
//
// subtle: these are different kernels (a = -0.5 vs -0.75, renormalized window
// vs clamped taps); mixing them up gives errors around 1e-2.
import * as tf from '../tfjs.ts';

export type BicubicKind = 'aa' | 'plain';

/** Keys cubic kernel with a = -0.5, as PyTorch's antialiased path uses. */
export function aaCubicFilter(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Weight matrix [outSize, inSize] of PyTorch's antialiased bicubic along one axis. */
export function aaBicubicWeights(inSize: number, outSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invscale = scale >= 1 ? 1 / scale : 1;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    // C++ int() truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    const w: number[] = [];
    for (let j = 0; j < xsize; j++) {
      const v = aaCubicFilter((j + xmin - center + 0.5) * invscale);
      w.push(v);
      total += v;
    }
    for (let j = 0; j < xsize; j++) m[i * inSize + xmin + j] = total !== 0 ? w[j] / total : 0;
  }
  return m;
}

/** Weight matrix [outSize, inSize] of PyTorch's plain bicubic (A = -0.75, align_corners=False). */
export function plainBicubicWeights(inSize: number, outSize: number): Float64Array {
  const A = -0.75;
  const cc1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const cc2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = scale * (i + 0.5) - 0.5; // not clamped at 0 for cubic
    const i0 = Math.floor(src);
    const t = src - i0;
    const coeffs = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
    for (let k = 0; k < 4; k++) {
      const idx = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[i * inSize + idx] += coeffs[k];
    }
  }
  return m;
}

export function bicubicWeights(kind: BicubicKind, inSize: number, outSize: number): Float64Array {
  return kind === 'aa' ? aaBicubicWeights(inSize, outSize) : plainBicubicWeights(inSize, outSize);
}

/**
 * Resizes a channels-last grid `[inH, inW, C]` to `[outH, outW, C]`:
 * width pass first, then height, as PyTorch's CPU kernels do.
 */
export function resizeBicubic(x: tf.Tensor3D, outH: number, outW: number, kind: BicubicKind): tf.Tensor3D {
  const [inH, inW, C] = x.shape;
  return tf.tidy(() => {
    const mw = tf.tensor2d(Float32Array.from(bicubicWeights(kind, inW, outW)), [outW, inW]);
    const mh = tf.tensor2d(Float32Array.from(bicubicWeights(kind, inH, outH)), [outH, inH]);
    // width: [outW, inW] x [inW, inH*C]
    const xw = x.transpose([1, 0, 2]).reshape([inW, inH * C]);
    const y1 = tf.matMul(mw, xw).reshape([outW, inH, C]).transpose([1, 0, 2]); // [inH, outW, C]
    // height: [outH, inH] x [inH, outW*C]
    return tf.matMul(mh, y1.reshape([inH, outW * C])).reshape([outH, outW, C]) as tf.Tensor3D;
  });
}

/**
 * Slow oracle, written independently of the weight matrices: for each output
 * pixel it evaluates the kernel on the fly, as the PyTorch loops do
 * (antialiased: a renormalized window per axis; plain: 4x4 clamped taps,
 * interpolating along W for four rows, then along H). Float64 throughout.
 */
export function resizeBicubicSlow(
  data: Float32Array, inH: number, inW: number, C: number, outH: number, outW: number, kind: BicubicKind,
): Float64Array {
  const out = new Float64Array(outH * outW * C);
  const at = (y: number, x: number, c: number) => data[(y * inW + x) * C + c];
  if (kind === 'plain') {
    const A = -0.75;
    const k = (x: number) => {
      x = Math.abs(x);
      return x <= 1 ? ((A + 2) * x - (A + 3)) * x * x + 1 : x < 2 ? ((A * x - 5 * A) * x + 8 * A) * x - 4 * A : 0;
    };
    const clampY = (v: number) => Math.min(Math.max(v, 0), inH - 1);
    const clampX = (v: number) => Math.min(Math.max(v, 0), inW - 1);
    for (let i = 0; i < outH; i++) {
      const sy = (inH / outH) * (i + 0.5) - 0.5, y0 = Math.floor(sy), ty = sy - y0;
      for (let j = 0; j < outW; j++) {
        const sx = (inW / outW) * (j + 0.5) - 0.5, x0 = Math.floor(sx), tx = sx - x0;
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let m = -1; m <= 2; m++) {
            let row = 0;
            for (let n = -1; n <= 2; n++) row += k(tx - n) * at(clampY(y0 + m), clampX(x0 + n), c);
            s += k(ty - m) * row;
          }
          out[(i * outW + j) * C + c] = s;
        }
      }
    }
    return out;
  }
  // Antialiased: window [center - support, center + support) on each axis.
  const axis = (inSize: number, outSize: number, o: number) => {
    const scale = inSize / outSize, support = scale >= 1 ? 2 * scale : 2, inv = scale >= 1 ? 1 / scale : 1;
    const center = scale * (o + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const idx: number[] = [], w: number[] = [];
    for (let t = lo; t < hi; t++) { idx.push(t); w.push(aaCubicFilter((t - center + 0.5) * inv)); }
    const total = w.reduce((p, q) => p + q, 0);
    return { idx, w: w.map((v) => v / total) };
  };
  for (let i = 0; i < outH; i++) {
    const ay = axis(inH, outH, i);
    for (let j = 0; j < outW; j++) {
      const ax = axis(inW, outW, j);
      for (let c = 0; c < C; c++) {
        let s = 0;
        ay.idx.forEach((y, a) => ax.idx.forEach((x, b) => { s += ay.w[a] * ax.w[b] * at(y, x, c); }));
        out[(i * outW + j) * C + c] = s;
      }
    }
  }
  return out;
}
