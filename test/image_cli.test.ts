// Images Pillow refuses, and files that are not images at all, through the real command: exit 2,
// one line naming the file and the reason, no stack trace, and no wait (the image is read before
// the weights; a named pipe or /dev/zero is not read at all).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixturesDir, repoRoot } from './helpers/paths.ts';

const bin = path.join(repoRoot, 'bin', 'minicpmv.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-imgcli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const fixture = (f: string) => fs.readFileSync(path.join(fixturesDir, 'images', f));
const write = (name: string, bytes: Uint8Array) => { const p = path.join(tmp, name); fs.writeFileSync(p, bytes); return p; };

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MINICPMV_BACKEND: 'cpu' } });
  return { code: r.status, stderr: r.stderr.trim() };
}

const truncated = write('cut.jpg', fixture('pil_420_progressive.jpg').subarray(0, 300));
const unidentified = write('twelve.jpg', (() => { const b = Buffer.from(fixture('jpegjs_444.jpg')); b[b.indexOf(Buffer.from([0xff, 0xc0])) + 4] = 12; return b; })());
const brokenPng = write('ihdr-between.png', (() => {
  // IHDR repeated between two IDATs: Pillow's image data ends at the IHDR ("image file is truncated")
  const b = fixture('rgb8.png'), idat = b.indexOf('IDAT') - 4, len = b.readUInt32BE(idat), half = len >> 1;
  const chunk = (type: string, d: Uint8Array) => { const c = Buffer.alloc(12 + d.length); c.writeUInt32BE(d.length); c.write(type, 4, 'latin1'); c.set(d, 8); return c; };
  const data = b.subarray(idat + 8, idat + 8 + len);
  return Buffer.concat([b.subarray(0, 33), chunk('IDAT', data.subarray(0, half)), b.subarray(8, 33), chunk('IDAT', data.subarray(half)), b.subarray(idat + 12 + len)]);
})());
const fifo = path.join(tmp, 'pipe.jpg');
const haveFifo = spawnSync('mkfifo', [fifo]).status === 0;

const CASES: [string, string, RegExp][] = [
  ['truncated JPEG', truncated, /^.*cut\.jpg: image file is truncated/],
  ['JPEG Pillow cannot identify', unidentified, /twelve\.jpg: cannot identify image file \(cannot handle 12-bit layers\)/],
  ['PNG whose image data Pillow cuts short', brokenPng, /ihdr-between\.png: image file is truncated/],
  ['/dev/zero', '/dev/zero', /image \/dev\/zero is a character device, not a regular file/],
  ...(haveFifo ? [['named pipe', fifo, /image .*pipe\.jpg is a named pipe, not a regular file/] as [string, string, RegExp]] : []),
];

describe('refused images through minicpmv chat and trace', () => {
  it.each(CASES)('%s: exit 2, one line', (_name, file, pattern) => {
    for (const args of [['chat', '--image', file, '--prompt', 'x'], ['trace', '--image', file, '--prompt', 'x', '--out', path.join(tmp, 't.safetensors')]]) {
      const r = cli(...args);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^backend: /.test(l) && !/^note: using the bundled/.test(l));
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
    }
  });
});
