// JPEG decoding bit-exact with Pillow's `Image.open(f).convert('RGB')` (Pillow 10.1-12.x with
// libjpeg-turbo 3.x), with Pillow's verdicts: a file Pillow refuses is refused, a file it opens is
// opened. Three stages, each modelled on what Pillow runs (docs/jpeg.md):
//   1. Image.open: Pillow's Python marker walk (./jpeg/pillow_open.ts) -> mode and size, or refusal;
//      then the decompression-bomb limit on that size;
//   2. load(): libjpeg-turbo's decompressor as Pillow configures and feeds it (./jpeg/decoder.ts);
//   3. convert('RGB') from mode L / RGB / CMYK (./jpeg/output.ts).
import { ImageError, checkImageSize, type RgbImage } from './types.ts';
import { pillowOpenJpeg, PillowOpenError, type PillowMode } from './jpeg/pillow_open.ts';
import { JpegDecoder, JpegStop, type JpegFrame } from './jpeg/decoder.ts';
import type { ColorTransform } from './jpeg/output.ts';

/** libjpeg-turbo's colour-space guess (jdapimin.c default_decompress_parms) and the output Pillow requests. */
export function colorTransform(frame: JpegFrame, mode: PillowMode): ColorTransform {
  const n = frame.components.length;
  const want = n === 1 ? 'L' : n === 3 ? 'RGB' : n === 4 ? 'CMYK' : '';
  if (want !== mode) throw new JpegStop('corrupt', `unsupported color conversion request (${n} components, mode ${mode})`);
  if (n === 1) return 'gray';
  if (n === 3) {
    if (frame.sawJFIF) return 'ycc';
    if (frame.sawAdobe) return frame.adobeTransform === 0 ? 'rgb' : 'ycc';
    const [a, b, c] = frame.components.map((k) => k.id);
    return a === 82 && b === 71 && c === 66 ? 'rgb' : 'ycc'; // ids 'R','G','B'; 1,2,3 and anything else: YCbCr
  }
  if (frame.sawAdobe) return frame.adobeTransform === 0 ? 'cmyk' : 'ycck';
  return 'cmyk';
}

export function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  let header;
  try {
    header = pillowOpenJpeg(bytes);
  } catch (e) {
    if (e instanceof PillowOpenError) throw new ImageError(`${source}: ${e.message}`);
    throw e;
  }
  checkImageSize(header.width, header.height, 'JPEG', source);
  try {
    const decoder = new JpegDecoder(bytes);
    const frame = decoder.readHeader();
    if (frame.width !== header.width || frame.height !== header.height) {
      throw new JpegStop('corrupt', `frame header says ${frame.width}x${frame.height}, Pillow read ${header.width}x${header.height}`);
    }
    const data = decoder.decode(frame, colorTransform(frame, header.mode));
    return { width: frame.width, height: frame.height, data };
  } catch (e) {
    if (e instanceof JpegStop) {
      if (e.kind === 'truncated') throw new ImageError(`${source}: image file is truncated: ${e.message}`);
      throw new ImageError(`${source}: broken JPEG data stream: ${e.message}`);
    }
    throw e;
  }
}
