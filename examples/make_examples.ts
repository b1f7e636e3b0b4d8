// Draws the example images (run: npx tsx examples/make_examples.ts). Simple scenes
// drawn in code, so they carry no licence question; PNG and one baseline JPEG.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

const here = path.dirname(fileURLToPath(import.meta.url));

function draw(w: number, h: number, px: (x: number, y: number) => [number, number, number]): Uint8Array {
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = px(x, y);
      data.set([r, g, b, 255], (y * w + x) * 4);
    }
  return data;
}

function savePng(name: string, w: number, h: number, data: Uint8Array): void {
  const png = new PNG({ width: w, height: h });
  png.data = Buffer.from(data);
  fs.writeFileSync(path.join(here, name), PNG.sync.write(png));
}

// A red ball on grass under a blue sky.
savePng('red_ball.png', 320, 240, draw(320, 240, (x, y) => {
  const d = Math.hypot(x - 160, y - 150);
  if (d < 50) { const s = 1 - d / 80; return [Math.round(200 + 55 * s), Math.round(30 * s), Math.round(30 * s)]; }
  if (y > 170) return [40, 140 + ((x * 7 + y * 3) % 20), 40];
  return [110 + Math.round(y / 3), 160 + Math.round(y / 4), 235];
}));

// A chessboard, 8 x 8 squares.
savePng('chessboard.png', 256, 256, draw(256, 256, (x, y) => (((x >> 5) + (y >> 5)) % 2 ? [30, 30, 30] : [235, 225, 200])));

// A sunset gradient with a dark sea, as a baseline JPEG.
const w = 400, h = 260;
const rgba = draw(w, h, (x, y) => {
  if (y > 170) return [10, 30 + Math.round(20 * Math.sin(x / 9)), 70];
  const sun = Math.hypot(x - 200, y - 170) < 40;
  return sun ? [255, 220, 90] : [230 - Math.round(y / 3), 110 + Math.round(y / 4), 80 + Math.round(y / 2)];
});
fs.writeFileSync(path.join(here, 'sunset.jpg'), jpeg.encode({ data: Buffer.from(rgba), width: w, height: h }, 90).data);
console.log('wrote examples/red_ball.png, examples/chessboard.png, examples/sunset.jpg');
