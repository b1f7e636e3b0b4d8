// encodePng (the image inside `minicpmv inspect`'s page): this project's PNG reader, which matches Pillow
// byte for byte, gives back exactly the pixels written.
import { describe, expect, it } from 'vitest';
import { encodePng } from '../src/image/png_write.ts';
import { decodeImage } from '../src/image/decode.ts';
import { mulberry32 } from '../src/model/rng.ts';

describe('encodePng', () => {
  it('round-trips through the PNG reader, for odd sizes and random pixels', () => {
    const r = mulberry32(5);
    for (const [w, h] of [[1, 1], [3, 7], [448, 448], [641, 2]]) {
      const data = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));
      const png = encodePng({ width: w, height: h, data });
      expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const back = decodeImage(png, 'encoded.png');
      expect([back.width, back.height]).toEqual([w, h]);
      expect(Buffer.from(back.data).equals(Buffer.from(data))).toBe(true);
    }
  });

  it('refuses pixels that do not fill the size', () => {
    expect(() => encodePng({ width: 2, height: 2, data: new Uint8Array(11) })).toThrow(/2x2 RGB needs 12 bytes, got 11/);
  });
});
