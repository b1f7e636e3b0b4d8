// Image loading = Pillow's `Image.open(f).convert('RGB')` (README / chat.py of MiniCPM-V v1, SPEC §5).
// The format comes from the bytes, never the file name. No EXIF rotation (Image.open does not apply it).
// Every failure is an ImageError naming the file; decoder exceptions are wrapped, never passed through.
import { readRegularFile } from '../files.ts';
import { ImageError, type RgbImage } from './types.ts';
import { decodePng } from './png.ts';
import { decodeJpeg } from './jpeg.ts';

export { ImageError, type RgbImage, MAX_DECODE_PIXELS, PIL_MAX_IMAGE_PIXELS } from './types.ts';

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp' | 'tiff' | 'unknown';

const startsWith = (b: Uint8Array, sig: number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** Identifies the container from its magic bytes. */
export function detectFormat(bytes: Uint8Array): ImageFormat {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, ascii('GIF87a')) || startsWith(bytes, ascii('GIF89a'))) return 'gif';
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return 'webp';
  if (startsWith(bytes, ascii('BM'))) return 'bmp';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  return 'unknown';
}

/** Decodes PNG or JPEG bytes to 8-bit RGB exactly as `Image.open(f).convert('RGB')`, with Pillow's verdicts (docs/jpeg.md). */
export function decodeImage(bytes: Uint8Array, source = '<bytes>'): RgbImage {
  if (bytes.length === 0) throw new ImageError(`${source}: empty file (0 bytes)`);
  const format = detectFormat(bytes);
  try {
    switch (format) {
      case 'png':
        return decodePng(bytes, source);
      case 'jpeg':
        return decodeJpeg(bytes, source);
      case 'unknown':
        throw new ImageError(`${source}: not a recognized image format (first bytes ${hex(bytes.subarray(0, 8))}); expected PNG or JPEG`);
      default:
        throw new ImageError(`${source}: unsupported image format ${format.toUpperCase()}; only PNG and JPEG are supported (convert the image first)`);
    }
  } catch (e) {
    if (e instanceof ImageError) throw e;
    // Anything else (e.g. a RangeError from an allocation the machine refuses) still names the file, on one line.
    const msg = String((e as Error)?.message ?? e).split('\n')[0];
    throw new ImageError(`${source}: failed to decode ${format.toUpperCase()}: ${msg}`);
  }
}

/** Largest file loadImage reads (Node's own limit for reading a whole file). */
export const MAX_IMAGE_FILE_BYTES = 2 ** 31 - 1;

/**
 * Reads and decodes an image file. Only regular files are read: a directory, a named pipe, a device
 * (/dev/zero, /dev/urandom) or a socket is refused at once, without reading (src/files.ts).
 */
export function loadImage(path: string): RgbImage {
  const bytes = readRegularFile(path, `image ${path}`, MAX_IMAGE_FILE_BYTES, (m) => new ImageError(m));
  return decodeImage(bytes, path);
}

function hex(b: Uint8Array): string {
  return [...b].map((v) => v.toString(16).padStart(2, '0')).join(' ');
}
