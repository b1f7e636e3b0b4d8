import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsError, SafetensorsFile } from '../src/weights/safetensors.ts';
import { SafetensorsWriter, writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { bf16ToF32Value, f16ToF32Table, f32ToBf16Value, f32ToF16Value } from '../src/weights/dtype.ts';
import { named, shared as sharedReq, unmet } from './helpers/requires.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(repoRoot, '..', 'shared');
const tinyModel = path.join(shared, 'golden', 'tiny-a', 'model.safetensors');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpFile = (name = 'f') => path.join(tmp, `${name}-${counter++}.safetensors`);

/** A file with a hand-written header (string or object), an optional wrong length prefix, and `data` bytes. */
function rawFile(header: string | object, dataBytes: number, lenOverride?: bigint): string {
  const p = tmpFile('raw');
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  fs.writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(dataBytes, 7)]));
  return p;
}

function expectError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(SafetensorsError);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe('float conversions', () => {
  it('bf16 widening is exact and narrowing rounds to nearest even', () => {
    expect(bf16ToF32Value(0x3f80)).toBe(1);
    expect(bf16ToF32Value(0xc000)).toBe(-2);
    // 1 + 2^-8 is exactly halfway between bf16 1 and 1+2^-7: ties to the even mantissa (1.0).
    expect(f32ToBf16Value(1 + 2 ** -8)).toBe(0x3f80);
    // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
    expect(f32ToBf16Value(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16Value(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above the tie
    expect(f32ToBf16Value(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16ToF32Value(f32ToBf16Value(NaN)))).toBe(true);
    // Every finite bf16 value survives widen -> narrow.
    for (let h = 0; h < 65536; h++) {
      const v = bf16ToF32Value(h);
      if (!Number.isNaN(v)) expect(f32ToBf16Value(v)).toBe(h);
    }
  });

  it('f16 table matches IEEE binary16 and narrowing is round-to-nearest-even', () => {
    const t = f16ToF32Table();
    expect(t[0x3c00]).toBe(1);
    expect(t[0x7bff]).toBe(65504);
    expect(t[0x0001]).toBe(2 ** -24);
    expect(t[0x0400]).toBe(2 ** -14);
    expect(t[0xfc00]).toBe(-Infinity);
    expect(Number.isNaN(t[0x7e00])).toBe(true);
    for (let h = 0; h < 65536; h++) if (!Number.isNaN(t[h])) expect(f32ToF16Value(t[h])).toBe(h);
    // Oracle: nearest representable half by brute search among sorted finite positives, ties to even.
    const pos = [...Array(0x7c00).keys()]; // 0x0000..0x7bff ascending in value
    const oracle = (x: number): number => {
      if (x >= 65520) return 0x7c00;
      let lo = 0, hi = pos.length - 1;
      while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (t[mid] <= x) lo = mid; else hi = mid; }
      const dl = x - t[lo], dh = t[hi] - x;
      return dl < dh ? lo : dh < dl ? hi : (lo % 2 === 0 ? lo : hi);
    };
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const samples: number[] = [65519.99, 65520, 65504, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -26, 2 ** -14 * (1 - 2 ** -12)];
    for (let i = 0; i < 20000; i++) samples.push(Math.fround(2 ** (rnd() * 44 - 28) * (1 + rnd())));
    for (let h = 1; h < 0x7bff; h += 97) samples.push(Math.fround((t[h] + t[h + 1]) / 2)); // exact ties
    for (const x of samples) {
      const xf = Math.fround(x);
      expect(f32ToF16Value(xf)).toBe(oracle(xf));
      expect(f32ToF16Value(-xf)).toBe(oracle(xf) | 0x8000);
    }
  });
});

describe('write and read back', () => {
  const tensors: TensorToWrite[] = [
    { name: 'f32', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2.5, 3e-8, 1e30, -0, 7]) },
    { name: 'bf16', dtype: 'BF16', shape: [5], data: Float32Array.from([1, -2, 0.1, 1 + 2 ** -8, 3.14159]) },
    { name: 'f16', dtype: 'F16', shape: [1, 5], data: Float32Array.from([1, -2, 0.1, 65504, 1e-7]) },
    { name: 'i32', dtype: 'I32', shape: [3], data: Int32Array.from([-2147483648, 0, 2147483647]) },
    { name: 'i64', dtype: 'I64', shape: [3], data: Int32Array.from([-5, 0, 123456]) },
    { name: 'u8', dtype: 'U8', shape: [7], data: Uint8Array.from([0, 1, 2, 250, 251, 254, 255]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    { name: 'scalar', dtype: 'F32', shape: [], data: Float32Array.from([42]) },
  ];

  it('round-trips every dtype with metadata, header padded with spaces to 8 bytes', () => {
    const p = tmpFile();
    writeSafetensors(p, tensors, { format: 'pt', note: 'x' });
    const bytes = fs.readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    expect(header.trimEnd().endsWith('}')).toBe(true);
    expect(header.slice(header.trimEnd().length)).toMatch(/^ *$/);
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(f.keys()).toEqual(tensors.map((t) => t.name));
    expect(f.info('f32')).toEqual({ dtype: 'F32', shape: [2, 3], begin: 0, end: 24 });
    expect([...f.readFloat32('f32')]).toEqual([...tensors[0].data as Float32Array]);
    // bf16 keeps the top 16 bits of the RNE-rounded float32.
    expect([...f.readFloat32('bf16')]).toEqual([1, -2, bf16ToF32Value(f32ToBf16Value(0.1)), 1, bf16ToF32Value(f32ToBf16Value(3.14159))]);
    const f16 = f.readFloat32('f16');
    expect([f16[0], f16[1], f16[3]]).toEqual([1, -2, 65504]);
    expect(Math.abs(f16[2] - 0.1)).toBeLessThanOrEqual(2 ** -14); // half ulp at 0.1 is 2^-14
    expect(f16[4]).toBe(2 ** -24 * Math.round(1e-7 / 2 ** -24));
    expect([...f.readInt32('i32')]).toEqual([-2147483648, 0, 2147483647]);
    expect([...f.readInt32('i64')]).toEqual([-5, 0, 123456]);
    expect([...f.readFloat32('i64')]).toEqual([-5, 0, 123456]);
    expect([...f.readUint8('u8')]).toEqual([0, 1, 2, 250, 251, 254, 255]);
    expect([...f.readInt32('u8')]).toEqual([0, 1, 2, 250, 251, 254, 255]);
    expect(f.readFloat32('empty').length).toBe(0);
    expect([...f.readFloat32('scalar')]).toEqual([42]);
    expect(f.readRaw('i32').byteLength).toBe(12);
    f.close();
  });

  it('chunked positioned reads give identical results for every chunk size', () => {
    const p = tmpFile();
    const n = 1003; // odd length: the last piece is partial
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 100);
    const big = BigInt64Array.from({ length: n }, (_, i) => BigInt(i * 7 - 3000));
    writeSafetensors(p, [
      { name: 'f32', dtype: 'F32', shape: [n], data: a },
      { name: 'bf16', dtype: 'BF16', shape: [n], data: a },
      { name: 'f16', dtype: 'F16', shape: [n], data: a },
      { name: 'i64', dtype: 'I64', shape: [n], data: big },
    ]);
    const ref = SafetensorsFile.open(p);
    for (const chunkBytes of [8, 16, 24, 1000, 4096]) {
      const f = SafetensorsFile.open(p, { chunkBytes });
      for (const k of ['f32', 'bf16', 'f16', 'i64']) expect(f.readFloat32(k)).toEqual(ref.readFloat32(k));
      expect(f.readInt32('i64')).toEqual(ref.readInt32('i64'));
      expect(f.readRaw('bf16')).toEqual(ref.readRaw('bf16'));
      f.close();
    }
    expect([...ref.readFloat32('f32')]).toEqual([...a]);
    ref.close();
  });

  it('reads tensors past 4 GiB in a sparse file, across the 2^31 and 2^32 byte boundaries', () => {
    const p = tmpFile('sparse');
    const padBytes = 2 ** 32 - 6; // the next tensor straddles data offset 2^32
    const x = Float32Array.from([1.5, -2, 3.25, 4]);
    const header = JSON.stringify({
      pad: { dtype: 'U8', shape: [padBytes], data_offsets: [0, padBytes] },
      x: { dtype: 'F32', shape: [4], data_offsets: [padBytes, padBytes + 16] },
    });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const fd = fs.openSync(p, 'w');
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, Buffer.from(header), 0, header.length, 8);
    const dataStart = 8 + header.length;
    fs.writeSync(fd, new Uint8Array(x.buffer), 0, 16, dataStart + padBytes);
    fs.closeSync(fd);
    for (const chunkBytes of [8, 1 << 30]) {
      const f = SafetensorsFile.open(p, { chunkBytes });
      expect(f.info('x').begin).toBe(padBytes);
      expect([...f.readFloat32('x')]).toEqual([...x]);
      f.close();
    }
  });

  it('streams tensors piece by piece and checks order and sizes', () => {
    const p = tmpFile('stream');
    const w = new SafetensorsWriter(p, [
      { name: 'a', dtype: 'BF16', shape: [2, 3] },
      { name: 'none', dtype: 'F32', shape: [0] },
      { name: 'b', dtype: 'F32', shape: [2] },
    ], { k: 'v' });
    expect(w.current).toBe('a');
    w.append(Float32Array.from([1, 2]));
    w.append(Float32Array.from([3, 4, 5, 6]));
    expect(w.current).toBe('b'); // the empty tensor needs no bytes
    expectError(() => w.writeTensor('a', new Float32Array(6)), 'expected tensor "b"');
    expectError(() => w.append(new Float32Array(3)), '"b"', 'takes 8 bytes');
    w.writeTensor('b', Float32Array.from([7, 8]));
    w.close();
    const f = SafetensorsFile.open(p);
    expect([...f.readFloat32('a')]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...f.readFloat32('b')]).toEqual([7, 8]);
    expect(f.info('none').shape).toEqual([0]);
    f.close();

    const h = tmpFile('hashed');
    const w3 = new SafetensorsWriter(h, [{ name: 'a', dtype: 'BF16', shape: [3] }], undefined, { sha256: true });
    expectError(() => w3.appendEncoded(new Uint8Array(3)), '3 bytes is not a whole number of BF16 elements');
    w3.appendEncoded(new Uint8Array([0x80, 0x3f, 0, 0x40, 0x80, 0xbf])); // 1, 2, -1
    w3.close();
    expect(w3.sha256()).toBe(createHash('sha256').update(fs.readFileSync(h)).digest('hex'));
    expect(w3.bytesWritten).toBe(fs.statSync(h).size);
    expect([...SafetensorsFile.open(h).readFloat32('a')]).toEqual([1, 2, -1]);

    const q = tmpFile('partial');
    const w2 = new SafetensorsWriter(q, [{ name: 'a', dtype: 'F32', shape: [4] }]);
    w2.append(Float32Array.from([1]));
    expectError(() => w2.close(), 'before tensor "a" was complete');
    expect(fs.existsSync(q)).toBe(false);
    expectError(() => writeSafetensors(tmpFile(), [{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }]),
      '"a"', 'shape [3]', '2 values');
    expectError(() => writeSafetensors(tmpFile(), [{ name: 'a', dtype: 'I32', shape: [1], data: new Float32Array(1) }]),
      'cannot write Float32Array as I32');
  });
});

const golden = sharedReq('golden', 'tiny-a', 'model.safetensors');
describe.skipIf(unmet(golden))(named('golden tiny-a checkpoint (written by the Python library)', golden), () => {
  it('reads every tensor equal to an independent DataView parse', () => {
    const f = SafetensorsFile.open(tinyModel);
    expect(f.keys().length).toBe(64);
    expect(f.metadata.format).toBe('pt');
    const bytes = fs.readFileSync(tinyModel);
    const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
    for (const k of f.keys()) {
      const t = f.info(k);
      expect(t.dtype).toBe('F32');
      const got = f.readFloat32(k);
      const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart + t.begin, t.end - t.begin);
      for (let i = 0; i < got.length; i += Math.max(1, Math.floor(got.length / 500))) {
        expect(got[i]).toBe(view.getFloat32(i * 4, true));
      }
    }
    expect(f.info('vpm.pos_embed').shape).toEqual([1, 729, 96]);
    f.close();
  });
});

describe('bad files give SafetensorsError naming the file and tensor', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('missing file, too short, header length past the end, truncated data', () => {
    expectError(() => SafetensorsFile.open(path.join(tmp, 'nope.safetensors')), 'nope.safetensors', 'does not exist');
    expectError(() => SafetensorsFile.open('/dev/zero'), '/dev/zero is a character device, not a regular file');
    const fifo = path.join(tmp, 'pipe.safetensors');
    execFileSync('mkfifo', [fifo]);
    expectError(() => SafetensorsFile.open(fifo), 'is a named pipe, not a regular file');
    const short = tmpFile('short');
    fs.writeFileSync(short, Buffer.from([1, 2, 3]));
    expectError(() => SafetensorsFile.open(short), short, 'too short');
    const big = rawFile(ok, 8, 10_000n);
    expectError(() => SafetensorsFile.open(big), big, 'header length 10000 is larger than the rest of the file');
    const huge = rawFile(ok, 8, 2n ** 63n);
    expectError(() => SafetensorsFile.open(huge), 'larger than the rest');
    const truncated = rawFile(ok, 5); // 8 bytes of data promised, 5 present
    expectError(() => SafetensorsFile.open(truncated), truncated, 'tensor "a"', 'out of range', 'data section is 5 bytes');
  });

  it('malformed JSON, non-object header, bad metadata', () => {
    const bad = rawFile('{"a": {"dtype": "F32",', 0);
    expectError(() => SafetensorsFile.open(bad), bad, 'not valid UTF-8 JSON');
    expectError(() => SafetensorsFile.open(rawFile('[1, 2]', 0)), 'must be a JSON object');
    expectError(() => SafetensorsFile.open(rawFile({ __metadata__: { n: 3 } }, 0)), '__metadata__["n"] is not a string');
  });

  it('unknown dtype, bad shape, bad offsets, byte-count mismatch, overlap', () => {
    const unk = rawFile({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, 2);
    expectError(() => SafetensorsFile.open(unk), unk, 'tensor "w"', 'unknown dtype "Q4"');
    expectError(() => SafetensorsFile.open(rawFile({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2)), 'unsupported dtype');
    expectError(() => SafetensorsFile.open(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4)), '"w"', 'non-negative');
    expectError(() => SafetensorsFile.open(rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4)), 'non-negative');
    expectError(() => SafetensorsFile.open(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8)), 'out of range');
    expectError(() => SafetensorsFile.open(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 8)), 'data_offsets');
    const mism = rawFile({ w: { dtype: 'BF16', shape: [3, 2], data_offsets: [0, 8] } }, 8);
    expectError(() => SafetensorsFile.open(mism), mism, '"w"', 'shape [3, 2] x BF16 needs 12 bytes but data_offsets span 8');
    const over = rawFile({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, 12);
    expectError(() => SafetensorsFile.open(over), over, '"b"', 'overlap "a"');
  });

  it('wrong key, wrong read type, int64 out of int32 range', () => {
    const p = tmpFile();
    writeSafetensors(p, [
      { name: 'f', dtype: 'F32', shape: [1], data: Float32Array.from([1]) },
      { name: 'big', dtype: 'I64', shape: [2], data: BigInt64Array.from([1n, 2n ** 40n]) },
    ]);
    const f = SafetensorsFile.open(p);
    expectError(() => f.info('g'), p, 'no tensor named "g"');
    expectError(() => f.readInt32('f'), p, '"f" is F32');
    expectError(() => f.readUint8('f'), '"f" is F32');
    expectError(() => f.readInt32('big'), '"big" element 1 = 1099511627776 does not fit in int32');
    f.close();
    expectError(() => f.readFloat32('f'), 'closed');
  });
});

describe('the reference implementation\'s rules (huggingface/safetensors tensor.rs), not JSON.parse\'s', () => {
  const f32 = (begin: number, n = 2) => ({ dtype: 'F32', shape: [n], data_offsets: [begin, begin + 4 * n] });

  it('trailing bytes after the last tensor are refused, also in a file without tensors', () => {
    const p = rawFile({ a: f32(0) }, 12);
    expectError(() => SafetensorsFile.open(p), p, '4 bytes after the last tensor', 'cover 8 of the 12-byte data section');
    expectError(() => SafetensorsFile.open(rawFile({}, 8)), '8 bytes after the last tensor');
    expectError(() => SafetensorsFile.open(rawFile({ __metadata__: { format: 'pt' } }, 1)), '1 bytes after the last tensor');
  });

  it('gaps between tensors and before the first one are refused', () => {
    const gap = rawFile({ a: f32(0), b: f32(12) }, 20);
    expectError(() => SafetensorsFile.open(gap), gap, 'tensor "b" starts at byte 12 but "a" ends at byte 8: a gap of 4 bytes');
    expectError(() => SafetensorsFile.open(rawFile({ a: f32(4) }, 12)), 'tensor "a" starts at byte 4', 'must start at byte 0');
  });

  it('a key given twice is refused instead of the last one silently winning', () => {
    // The campaign's reproducer: a second entry under the same name turns an F32 tensor into F16.
    const twice = rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 8);
    expectError(() => SafetensorsFile.open(twice), twice, 'header has the key "w" twice');
    const field = rawFile('{"w":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 8);
    expectError(() => SafetensorsFile.open(field), 'tensor "w": header entry has the field "dtype" twice');
    expectError(() => SafetensorsFile.open(rawFile('{"__metadata__":{"a":"1","a":"2"}}', 0)), '__metadata__ has the key "a" twice');
    // Escapes are decoded before comparing: "\u0077" is "w".
    expectError(() => SafetensorsFile.open(rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8)), 'the key "w" twice');
  });

  it('a missing field names the tensor and the field', () => {
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      const entry: Record<string, unknown> = { ...f32(0) };
      delete entry[field];
      const p = rawFile({ 'llm.lm_head.weight': entry }, 8);
      expectError(() => SafetensorsFile.open(p), p, `tensor "llm.lm_head.weight": header entry has no "${field}" field`);
    }
    expectError(() => SafetensorsFile.open(rawFile({ w: [1, 2] }, 0)), 'tensor "w": header entry must be an object, got [1, 2]');
  });

  it('sizes are JSON integers: 2.0 and 8e0 are refused as Rust usize refuses them', () => {
    expectError(() => SafetensorsFile.open(rawFile('{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 8)),
      'shape [2.0] must be a list of non-negative integers');
    expectError(() => SafetensorsFile.open(rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', 8)),
      'data_offsets [0, 8e0] must be');
    expectError(() => SafetensorsFile.open(rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}\ufeff', 8)),
      'not valid UTF-8 JSON');
  });

  it('a byte-order mark is refused; JSON whitespace before the brace is accepted, as the reference reader does', () => {
    const bom = tmpFile('bom');
    const h = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    fs.writeFileSync(bom, Buffer.concat([len, h]));
    expectError(() => SafetensorsFile.open(bom), bom, 'not valid UTF-8 JSON');
    // tensor.rs test_whitespace_leading_padded_header: "\x06\0...\0\x09\x0A{}\x0D\x20" loads with no tensor.
    const lead = tmpFile('lead');
    fs.writeFileSync(lead, Buffer.from('\x06\0\0\0\0\0\0\0\x09\x0A{}\x0D\x20', 'latin1'));
    const f = SafetensorsFile.open(lead);
    expect(f.keys()).toEqual([]);
    f.close();
  });

  it('accepts what the reference accepts: empty tensors sharing an offset, scalars, null metadata, any header order', () => {
    const p = rawFile({
      __metadata__: null,
      z: { dtype: 'F32', shape: [] , data_offsets: [8, 12] },
      e1: { dtype: 'I32', shape: [2, 0], data_offsets: [8, 8] },
      a: f32(0),
      e0: { dtype: 'BF16', shape: [0], data_offsets: [0, 0] },
      extra: { dtype: 'U8', shape: [1], data_offsets: [12, 13], note: 1.5 },
    }, 13);
    const f = SafetensorsFile.open(p);
    expect(f.keys().sort()).toEqual(['a', 'e0', 'e1', 'extra', 'z']);
    expect(f.info('z').shape).toEqual([]);
    f.close();
  });

  it('deep nesting fails as bad JSON, not a stack overflow', () => {
    expectError(() => SafetensorsFile.open(rawFile(`{"w":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 0)), 'nesting deeper than');
  });
});
