// MiniCPM-V v1 image transform (SPEC §5; `MiniCPMV.init_transform`, TobyYang7/Vision MiniCPM-V/):
//   Resize((448, 448), BICUBIC) on the PIL image  -> pillowResizeBicubic (bit-exact uint8)
//   ToTensor()                                    -> CHW, uint8 / 255 in float32
//   Normalize(mean=(0.5,)*3, std=(0.5,)*3)        -> (x - 0.5) / 0.5 in float32 (sub_ then div_)
// Every image is squashed to size x size: no aspect-ratio preservation, no crop.
import { pillowResizeBicubic } from '../ops/pillow_resize.ts';
import type { RgbImage } from './types.ts';

export const IMAGE_SIZE = 448;

// The 256 possible outputs: f32(f32(f32(v / 255) - 0.5) / 0.5). Each step is one float32 operation
// rounded once (a double result rounded to float32 equals the correctly rounded float32 operation).
const LUT = new Float32Array(256);
for (let v = 0; v < 256; v++) {
  const t = Math.fround(v / 255);
  LUT[v] = Math.fround(Math.fround(t - 0.5) / 0.5);
}

/** RGB uint8 image -> pixel_values [3, size, size] float32, CHW. */
export function preprocess(img: RgbImage, size = IMAGE_SIZE): Float32Array {
  const r = pillowResizeBicubic(img, size, size);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = LUT[r.data[i * 3]];
    out[plane + i] = LUT[r.data[i * 3 + 1]];
    out[2 * plane + i] = LUT[r.data[i * 3 + 2]];
  }
  return out;
}
