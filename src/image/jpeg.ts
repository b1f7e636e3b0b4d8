// JPEG decoding, as close to Pillow's `Image.open(f).convert('RGB')` as jpeg-js allows.
//
// Pillow decodes JPEG with libjpeg-turbo (Pillow 10.1.0 wheels: 3.0.x; the golden data: 3.1.4.1) using
// its defaults: islow integer IDCT, "fancy" (triangular) chroma upsampling, integer YCbCr->RGB tables.
// jpeg-js 0.4.4 has its own IDCT, upsamples chroma by nearest neighbour and converts colour in floating
// point with truncation. We keep jpeg-js for the entropy decoding and IDCT but ask it for the raw
// component planes (colorTransform: false), then redo libjpeg-turbo's upsampling and colour conversion
// here (src/jdsample.c, src/jdcolor.c @ 3.1.4.1). What remains is the IDCT difference; docs/jpeg.md
// has the measured numbers.
import jpegJs from 'jpeg-js';
import { ImageError, MAX_DECODE_PIXELS, type RgbImage } from './types.ts';
import { readJpegInfo, type JpegInfo } from './jpeg_markers.ts';

/** libjpeg's guess of the colour space of a 3-component file (jdapimin.c default_decompress_parms). */
function isYCbCr(info: JpegInfo): boolean {
  if (info.jfif) return true;
  if (info.adobeTransform !== null) return info.adobeTransform !== 0;
  const [a, b, c] = info.components.map((k) => k.id);
  return !(a === 82 && b === 71 && c === 66); // 'R','G','B' ids mean RGB; anything else YCbCr
}

/**
 * Upsamples one component from jpeg-js's nearest-neighbour full-size plane the way libjpeg-turbo does
 * (jdsample.c jinit_upsampler: h2v1/h2v2 fancy when downsampled_width > 2, h1v2 fancy always, other
 * integral factors by replication, which is what jpeg-js already did).
 */
export function upsampleComponent(plane: Uint8Array, stride: number, c: number, W: number, H: number, info: JpegInfo): Uint8Array {
  const maxH = Math.max(...info.components.map((k) => k.h));
  const maxV = Math.max(...info.components.map((k) => k.v));
  const { h, v } = info.components[c];
  const fx = maxH / h, fy = maxV / v;
  const dw = Math.ceil((W * h) / maxH), dh = Math.ceil((H * v) / maxV); // downsampled_width/height
  const h2v1 = fx === 2 && fy === 1 && dw > 2, h1v2 = fx === 1 && fy === 2, h2v2 = fx === 2 && fy === 2 && dw > 2;
  const out = new Uint8Array(W * H);
  if (!h2v1 && !h1v2 && !h2v2) {
    for (let i = 0; i < W * H; i++) out[i] = plane[i * stride + c];
    return out;
  }
  // Recover the downsampled plane: jpeg-js put sample (dx, dy) at full-size (dx*fx .. , dy*fy ..).
  const ds = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) ds[y * dw + x] = plane[(y * fy * W + x * fx) * stride + c];
  const row = new Int32Array(2 * dw + 2); // one output row before cropping to W
  const sum = new Int32Array(dw);
  for (let y = 0; y < dh; y++) {
    for (let vv = 0; vv < fy; vv++) {
      const oy = y * fy + vv;
      if (oy >= H) break;
      const near = y * dw;
      if (fy === 2) {
        // Column sums 3 * nearest row + next-nearest row (above for the upper output row); rows past the
        // image edge replicate the edge row (jdmainct.c context rows).
        const far = Math.min(Math.max(vv === 0 ? y - 1 : y + 1, 0), dh - 1) * dw;
        for (let x = 0; x < dw; x++) sum[x] = ds[near + x] * 3 + ds[far + x];
      } else {
        for (let x = 0; x < dw; x++) sum[x] = ds[near + x];
      }
      if (h1v2) {
        const bias = vv === 0 ? 1 : 2;
        for (let x = 0; x < dw; x++) row[x] = (sum[x] + bias) >> 2;
      } else if (h2v1) {
        // 3/4 nearer + 1/4 further, biases 1 and 2; the first and last output copy the edge sample.
        row[0] = sum[0];
        row[1] = (sum[0] * 3 + sum[1] + 2) >> 2;
        for (let x = 1; x < dw - 1; x++) {
          row[2 * x] = (sum[x] * 3 + sum[x - 1] + 1) >> 2;
          row[2 * x + 1] = (sum[x] * 3 + sum[x + 1] + 2) >> 2;
        }
        row[2 * dw - 2] = (sum[dw - 1] * 3 + sum[dw - 2] + 1) >> 2;
        row[2 * dw - 1] = sum[dw - 1];
      } else {
        // h2v2: 9/16, 3/16, 3/16, 1/16 with biases 8 and 7; edge columns use 4 * their own sum.
        row[0] = (sum[0] * 4 + 8) >> 4;
        row[1] = (sum[0] * 3 + sum[1] + 7) >> 4;
        for (let x = 1; x < dw - 1; x++) {
          row[2 * x] = (sum[x] * 3 + sum[x - 1] + 8) >> 4;
          row[2 * x + 1] = (sum[x] * 3 + sum[x + 1] + 7) >> 4;
        }
        row[2 * dw - 2] = (sum[dw - 1] * 3 + sum[dw - 2] + 8) >> 4;
        row[2 * dw - 1] = (sum[dw - 1] * 4 + 7) >> 4;
      }
      for (let x = 0; x < W; x++) out[oy * W + x] = row[x];
    }
  }
  return out;
}

// jdcolor.c build_ycc_rgb_table: 16-bit fixed point, FIX(x) = (int)(x * 65536 + 0.5).
const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const crR = new Int32Array(256), cbB = new Int32Array(256), crG = new Int32Array(256), cbG = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  crR[i] = (FIX(1.402) * x + 32768) >> 16;
  cbB[i] = (FIX(1.772) * x + 32768) >> 16;
  crG[i] = -FIX(0.71414) * x;
  cbG[i] = -FIX(0.34414) * x + 32768;
}
const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

export function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  const info = readJpegInfo(bytes, source); // size checked here, before any pixel is decoded
  const { width: W, height: H } = info;
  const n3 = info.components.length === 3;
  if (info.components.length === 4 && info.adobeTransform === null) {
    // libjpeg reads this as plain CMYK; jpeg-js refuses 4 components without the Adobe marker.
    throw new ImageError(`${source}: unsupported JPEG: 4-component (CMYK) image without an Adobe APP14 marker`);
  }
  let input = bytes;
  if (n3 && info.adobeTransformOffset !== null && info.adobeTransform !== 0) {
    // jpeg-js converts colour whenever the Adobe transform flag is set; clear it to get raw planes.
    input = bytes.slice();
    input[info.adobeTransformOffset] = 0;
  }
  let raw: { width: number; height: number; data: Uint8Array };
  try {
    raw = jpegJs.decode(input, {
      useTArray: true,
      formatAsRGBA: false,
      colorTransform: n3 ? false : undefined,
      tolerantDecoding: false,
      maxResolutionInMP: MAX_DECODE_PIXELS / 1e6 + 1, // our own check (readJpegInfo) is the real limit
      maxMemoryUsageInMB: 16384,
    });
  } catch (e) {
    throw new ImageError(`${source}: corrupt JPEG image data (jpeg-js: ${(e as Error).message})`);
  }
  if (raw.width !== W || raw.height !== H || raw.data.length !== W * H * 3) {
    throw new ImageError(`${source}: corrupt JPEG image data (decoded ${raw.width}x${raw.height}, header says ${W}x${H})`);
  }
  // 1 component: jpeg-js replicated gray into RGB (= PIL mode L -> convert('RGB')).
  // 4 components: jpeg-js's own CMYK -> RGB (see docs/jpeg.md: within 1 of Pillow's cmyk2rgb).
  if (!n3) return { width: W, height: H, data: raw.data };
  const p0 = upsampleComponent(raw.data, 3, 0, W, H, info);
  const p1 = upsampleComponent(raw.data, 3, 1, W, H, info);
  const p2 = upsampleComponent(raw.data, 3, 2, W, H, info);
  const out = new Uint8Array(W * H * 3);
  const ycc = isYCbCr(info);
  for (let i = 0; i < W * H; i++) {
    if (!ycc) {
      out[i * 3] = p0[i]; out[i * 3 + 1] = p1[i]; out[i * 3 + 2] = p2[i];
      continue;
    }
    const y = p0[i], cb = p1[i], cr = p2[i];
    out[i * 3] = clamp8(y + crR[cr]);
    out[i * 3 + 1] = clamp8(y + ((cbG[cb] + crG[cr]) >> 16));
    out[i * 3 + 2] = clamp8(y + cbB[cb]);
  }
  return { width: W, height: H, data: out };
}
