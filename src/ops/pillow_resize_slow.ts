// Slow, obvious oracle for pillowResizeBicubic: every output pixel is computed on its own, straight
// from the Resample.c formulas (Pillow 10.1.0), recomputing its weights each time and going through the
// uint8-rounded horizontal result of each input row it needs. No tables, no shared state. Test-only.
import { type Rgb8, bicubicFilter } from './pillow_resize.ts';

/** Fixed-point (22-bit) weights of output sample `i` when resizing inSize -> outSize. */
function weightsFor(i: number, inSize: number, outSize: number): { first: number; w: number[] } {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 2 * filterscale;
  const center = (i + 0.5) * scale;
  let first = Math.trunc(center - support + 0.5);
  if (first < 0) first = 0;
  let last = Math.trunc(center + support + 0.5); // exclusive
  if (last > inSize) last = inSize;
  const raw: number[] = [];
  const ss = 1 / filterscale; // Resample.c multiplies by 1/filterscale (dividing can differ in the last bit)
  for (let j = first; j < last; j++) raw.push(bicubicFilter((j - center + 0.5) * ss));
  const sum = raw.reduce((a, b) => a + b, 0);
  const w = raw.map((r) => (sum !== 0 ? r / sum : r)).map((v) => Math.trunc(v * 4194304 + (v < 0 ? -0.5 : 0.5)));
  return { first, w };
}

function round8(acc: number): number {
  const v = Math.floor(acc / 4194304); // acc >> 22 (floor division)
  return Math.min(255, Math.max(0, v));
}

export function pillowResizeBicubicSlow(img: Rgb8, outW: number, outH: number): Rgb8 {
  const { width: inW, height: inH, data } = img;
  if (inW === outW && inH === outH) return { width: outW, height: outH, data: data.slice() };
  const px = (x: number, y: number, c: number) => data[(y * inW + x) * 3 + c];
  // Horizontal result of input row y at output column xx (uint8), or the input itself if widths match.
  const horiz = (xx: number, y: number, c: number): number => {
    if (outW === inW) return px(xx, y, c);
    const { first, w } = weightsFor(xx, inW, outW);
    let acc = 1 << 21;
    w.forEach((wj, j) => (acc += px(first + j, y, c) * wj));
    return round8(acc);
  };
  const out = new Uint8Array(outW * outH * 3);
  for (let yy = 0; yy < outH; yy++) {
    for (let xx = 0; xx < outW; xx++) {
      for (let c = 0; c < 3; c++) {
        let v: number;
        if (outH === inH) v = horiz(xx, yy, c);
        else {
          const { first, w } = weightsFor(yy, inH, outH);
          let acc = 1 << 21;
          w.forEach((wj, j) => (acc += horiz(xx, first + j, c) * wj));
          v = round8(acc);
        }
        out[(yy * outW + xx) * 3 + c] = v;
      }
    }
  }
  return { width: outW, height: outH, data: out };
}
