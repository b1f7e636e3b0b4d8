// Shared image types and limits. `decode.ts` re-exports these; they live here so the per-format
// decoders (png.ts, jpeg.ts) can use them without an import cycle.
import { UserError } from '../errors.ts';

/** Any problem reading an image. The message names the file (or "<bytes>") and the problem. */
export class ImageError extends UserError {}

/** 8-bit RGB image, rows top to bottom, HWC interleaved: data[(y*width + x)*3 + c]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array; // length width*height*3
}

// Pillow 10.1.0 src/PIL/Image.py: MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3);
// `_decompression_bomb_check` raises DecompressionBombError when pixels > 2 * MAX_IMAGE_PIXELS
// (and only warns between 1x and 2x). We refuse exactly where PIL refuses.
export const PIL_MAX_IMAGE_PIXELS = 89_478_485;
export const MAX_DECODE_PIXELS = 2 * PIL_MAX_IMAGE_PIXELS;

/** Throws unless the header's size is decodable: non-zero and not a decompression bomb. */
export function checkImageSize(width: number, height: number, format: string, source: string): void {
  if (width <= 0 || height <= 0) {
    throw new ImageError(`${source}: ${format} header declares a zero-sized image (${width}x${height})`);
  }
  const pixels = width * height;
  if (pixels > MAX_DECODE_PIXELS) {
    throw new ImageError(
      `${source}: ${format} image is ${width}x${height} = ${pixels} pixels, above the limit of ` +
        `${MAX_DECODE_PIXELS} (PIL's 2 x MAX_IMAGE_PIXELS decompression-bomb limit); refusing to decode`,
    );
  }
}
