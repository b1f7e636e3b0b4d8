// The native checkpoint reader reads the file that was validated, and refuses bad input with one line
// (issue 13, defect 1): no TensorFlow check failure, no raw TensorFlow text, no read by path.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '../src/tfjs.ts';
import { named, requirement, unmet } from './helpers/requires.ts';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { fileBackedBytes, loadNativeOps } from '../src/backend/native_ops.ts';
import { NativeOpError, READ_TENSOR, readTensorNative, runNative, type FileTensor } from '../src/ops/native_kernels.ts';
import { SafetensorsError, SafetensorsFile } from '../src/weights/safetensors.ts';
import { writeSafetensors } from '../src/weights/safetensors_writer.ts';
import { firstDiff } from './helpers/tensors.ts';

const native = nativeAvailable();
const ops = native.ok ? loadNativeOps() : undefined;
const opsReq = requirement(ops?.ok === true, native.ok
  ? `the project's native ops do not load (${ops?.detail}; npm install builds them where tfjs-node's libtensorflow exists)`
  : `the native tensorflow backend does not load (${native.reason})`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'read-checks-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** A checkpoint with one F32 tensor "a" = values, and a BF16 tensor "b". */
function checkpoint(values: number[]): string {
  const file = path.join(tmp, `w${n++}.safetensors`);
  writeSafetensors(file, [
    { name: 'a', dtype: 'F32', shape: [values.length], data: Float32Array.from(values) },
    { name: 'b', dtype: 'BF16', shape: [4], data: Float32Array.from([1, 2, 3, 4]) },
  ]);
  return file;
}

/** /proc/self/status's `key` (VmRSS, RssFile, RssAnon) in MiB. */
const status = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
/** `count` values in [-0.5, 0.5) from a multiplicative hash (`seed` shifts them). */
const values = (count: number, seed = 0) => Float32Array.from({ length: count }, (_, i) => (((i + seed) * 2654435761) % 1000003) / 1000003 - 0.5);
const toBf16 = (v: Float32Array) => {
  const u = new Uint32Array(Float32Array.from(v).buffer);
  for (let i = 0; i < u.length; i++) u[i] &= 0xffff0000;
  return new Float32Array(u.buffer);
};

/** The one-line error of fn, which must be a NativeOpError. */
function oneLineError(fn: () => unknown): string {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(NativeOpError);
  const msg = (err as Error).message;
  expect(msg).not.toContain('\n');
  expect(msg).toMatch(/^MiniCPMReadTensor: /);
  return msg;
}

describe('SafetensorsFile.open refuses what it cannot validate', () => {
  it('a named pipe fails at once instead of waiting for a writer', () => {
    const fifo = path.join(tmp, 'pipe.safetensors');
    execFileSync('mkfifo', [fifo]);
    expect(() => SafetensorsFile.open(fifo)).toThrow(SafetensorsError);
    expect(() => SafetensorsFile.open(fifo)).toThrow(/not a regular file/);
  });

  it('a path with a NUL byte is refused, not cut at the NUL', () => {
    const file = checkpoint([1, 2]);
    expect(() => SafetensorsFile.open(`${file}\0.extra`)).toThrow(/cannot contain a NUL byte/);
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMReadTensor reads the validated file', opsReq), () => {
  it('a file replaced at the same path after validation is not read: the open one is', async () => {
    await initBackend('tensorflow');
    const file = checkpoint([1, 2, 3]);
    const f = SafetensorsFile.open(file);
    const other = checkpoint([7, 8, 9]);
    fs.renameSync(other, file); // the path now names another file
    const t = readTensorNative(f.location('a'), [3])!;
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
    t.dispose();
    f.close();
  });

  it('a file truncated or grown after validation is refused with one line', async () => {
    await initBackend('tensorflow');
    const file = checkpoint([1, 2, 3, 4, 5, 6]);
    const f = SafetensorsFile.open(file);
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 4);
    expect(oneLineError(() => readTensorNative(f.location('a'), [6]))).toMatch(/changed since it was validated \(now \d+ bytes, was \d+\)/);
    fs.truncateSync(file, size + 8);
    expect(oneLineError(() => readTensorNative(f.location('b'), [4]))).toMatch(/changed since it was validated/);
    f.close();
  });

  it('negative, out-of-range and malformed attributes fail with one line, never a check failure', async () => {
    await initBackend('tensorflow');
    const file = checkpoint([1, 2, 3]);
    const f = SafetensorsFile.open(file);
    const at: FileTensor = f.location('a');
    // The op itself, past the wrapper's own checks.
    const raw = (attrs: Partial<Record<string, unknown>>) => () => runNative(READ_TENSOR, {},
      { fd: at.fd, file_id: at.fileId, size: at.size, offset: at.offset, count: at.count, dtype: at.dtype, T: 'float32', lazy: 0, ...attrs });
    // Before: count -1 aborted the process in TF_AllocateOutput (exit 134).
    expect(oneLineError(raw({ count: -1, offset: 8, dtype: 'F32' }))).toMatch(/count -1 is negative/);
    expect(oneLineError(raw({ offset: -8 }))).toMatch(/offset -8 is negative/);
    expect(oneLineError(raw({ count: 1e6 }))).toMatch(/lies beyond the file's \d+ bytes/);
    expect(oneLineError(raw({ offset: at.size }))).toMatch(/lies beyond/);
    expect(oneLineError(raw({ count: 2 ** 62 }))).toMatch(/lies beyond/);
    expect(oneLineError(raw({ dtype: 'F64' }))).toMatch(/dtype must be F32, BF16 or F16/);
    expect(oneLineError(raw({ T: 'int32' }))).toMatch(/T = int32 \(packed\) needs a BF16 or F16 tensor, got F32/);
    expect(oneLineError(raw({ fd: -1 }))).toMatch(/is not a file descriptor/);
    expect(oneLineError(raw({ file_id: '0:0' }))).toMatch(/not the validated file 0:0/);
    const dirFd = fs.openSync(tmp, 'r');
    try {
      expect(oneLineError(raw({ fd: dirFd }))).toMatch(/is not a regular file/);
    } finally {
      fs.closeSync(dirFd);
    }
    // The wrapper checks what it can before the op.
    expect(oneLineError(() => readTensorNative({ ...at, count: 1.5 }, [3]))).toMatch(/count must be an integer/);
    expect(oneLineError(() => readTensorNative(at, [4]))).toMatch(/holds 4 elements, not 3/);
    f.close();
    // A closed descriptor.
    expect(oneLineError(() => readTensorNative(at, [3]))).toMatch(/Bad file descriptor|not the validated file/);
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMReadTensor: weights of 1 MiB and more in memory of their own', opsReq), () => {
  const rssMiB = () => status('VmRSS');

  it('F32, BF16 widened and BF16 packed read the file exactly, past the 1 MiB threshold and below it', async () => {
    await initBackend('tensorflow');
    process.env.MINICPMV_MAP_WEIGHTS = '0'; // read, never left in the file's mapping (next describe)
    onTestFinished(() => { delete process.env.MINICPMV_MAP_WEIGHTS; });
    for (const count of [(1 << 18) + 6, (1 << 18) - 6, 3 << 19]) { // F32 just over 1 MiB, just under, 12 MiB
      const v = values(count);
      const bf = toBf16(v);
      const file = path.join(tmp, `big${n++}.safetensors`);
      writeSafetensors(file, [
        { name: 'a', dtype: 'F32', shape: [count], data: v },
        { name: 'b', dtype: 'BF16', shape: [count / 2, 2], data: bf },
      ]);
      const f = SafetensorsFile.open(file);
      const before = tf.memory().numTensors;
      const a = readTensorNative(f.location('a'), [count])!;
      const b = readTensorNative(f.location('b'), [count / 2, 2])!;
      const p = readTensorNative(f.location('b'), [count / 2, 2], { packed: true })!;
      expect(firstDiff(a.dataSync(), v)).toBe(-1);
      expect(firstDiff(b.dataSync(), bf)).toBe(-1);
      // Packed: the file's 16-bit values two per int32, element 2j in the low half of word j.
      const packedWords = p.dataSync() as Int32Array;
      const words = new Uint32Array(packedWords.buffer, packedWords.byteOffset, packedWords.length);
      const raw = new Uint32Array(bf.buffer);
      expect(p.shape).toEqual([count / 2, 1]);
      for (const j of [0, 1, Math.floor(count / 4), count / 2 - 1]) {
        expect(words[j]).toBe(((raw[2 * j] >>> 16) | (raw[2 * j + 1] & 0xffff0000)) >>> 0);
      }
      tf.dispose([a, b, p]);
      expect(tf.memory().numTensors).toBe(before);
      f.close();
    }
  });

  it('a large weight goes back to the system when disposed (RSS), also when refused for a non-finite value', async () => {
    await initBackend('tensorflow');
    const count = 24 << 20; // 48 MiB of BF16, 96 MiB widened
    const data = new Float32Array(count).fill(0.5);
    const file = path.join(tmp, `rss${n++}.safetensors`);
    writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [count], data }]);
    const f = SafetensorsFile.open(file);
    const t = readTensorNative(f.location('w'), [count])!;
    expect(t.dataSync()[count - 1]).toBe(0.5);
    const r1 = rssMiB();
    t.dispose();
    // The 96 MiB are unmapped at once, not kept for reuse (a garbage collection meanwhile only lowers RSS more).
    expect(r1 - rssMiB()).toBeGreaterThan(80);
    f.close();
    data[count - 3] = Number.NaN;
    writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [count], data }]);
    const g = SafetensorsFile.open(file);
    const r2 = rssMiB();
    const before = tf.memory().numTensors;
    expect(oneLineError(() => readTensorNative(g.location('w'), [count]))).toMatch(/1 non-finite value\(s\), first NaN at flat index 25165821/);
    expect(rssMiB() - r2).toBeLessThan(16);
    expect(tf.memory().numTensors).toBe(before);
    g.close();
  });
});

describe.skipIf(unmet(opsReq))(named('MiniCPMReadTensor: weights stored as the kernels take them stay in the file', opsReq), () => {
  const MiB = 1 << 20;
  it('an aligned F32 tensor and a packed BF16 matrix point into the page cache: exact, no memory of their own, unmapped at dispose', async (ctx) => {
    await initBackend('tensorflow');
    const a = values(3 * MiB, 1), b = toBf16(values(8 * MiB, 2)); // 12 MiB F32, 16 MiB BF16
    const file = path.join(tmp, `mapped${n++}.safetensors`);
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [a.length], data: a },
      { name: 'b', dtype: 'BF16', shape: [2048, 4096], data: b },
    ]);
    const f = SafetensorsFile.open(file);
    expect((f.location('a').offset % 64) + (f.location('b').offset % 64)).toBe(0);
    const before = fileBackedBytes(), numTensors = tf.memory().numTensors;
    const anon0 = status('RssAnon'), file0 = status('RssFile');
    const ta = readTensorNative(f.location('a'), [a.length])!;
    const tb = readTensorNative(f.location('b'), [2048, 4096], { packed: true })!;
    const mapped = fileBackedBytes() - before;
    if (mapped === 0) {
      // The filesystem of the temporary directory does not keep files in 2 MiB folios: the reader fell back to
      // memory of its own (covered above); still exact.
      expect(firstDiff(ta.dataSync(), a)).toBe(-1);
      tf.dispose([ta, tb]);
      f.close();
      ctx.skip(`${os.tmpdir()}'s page cache does not map as huge pages here: the weights were read into memory of their own`);
    }
    expect(mapped).toBe(12 * MiB + 16 * MiB);
    expect(status('RssFile') - file0).toBeGreaterThan(27);
    expect(status('RssAnon') - anon0).toBeLessThan(8);
    expect(firstDiff(ta.dataSync(), a)).toBe(-1);
    const words = new Uint32Array((tb.dataSync() as Int32Array).buffer);
    const raw = new Uint32Array(b.buffer);
    for (let j = 0; j < words.length; j += 4093) expect(words[j]).toBe(((raw[2 * j] >>> 16) | (raw[2 * j + 1] & 0xffff0000)) >>> 0);
    // A widened read of the same file is the file's values in memory of its own, never the mapping.
    const wide = readTensorNative(f.location('b'), [2048, 4096])!;
    expect(fileBackedBytes() - before).toBe(mapped);
    expect(firstDiff(wide.dataSync(), b)).toBe(-1);
    const file1 = status('RssFile');
    tf.dispose([ta, tb, wide]);
    expect(fileBackedBytes()).toBe(before);
    expect(file1 - status('RssFile')).toBeGreaterThan(27);
    expect(tf.memory().numTensors).toBe(numTensors);
    f.close();
  });

  it('a lazy table (the token embeddings) is checked at load but only the rows read become resident', async (ctx) => {
    await initBackend('tensorflow');
    const v = toBf16(values(8 * MiB, 6)); // [4096, 2048] BF16: 16 MiB
    const file = path.join(tmp, `lazy${n++}.safetensors`);
    writeSafetensors(file, [{ name: 'e', dtype: 'BF16', shape: [4096, 2048], data: v }]);
    const f = SafetensorsFile.open(file);
    const before = fileBackedBytes(), file0 = status('RssFile'), anon0 = status('RssAnon');
    const t = readTensorNative(f.location('e'), [4096, 2048], { packed: true, lazy: true })!;
    const raw = new Uint32Array(v.buffer);
    const word = (r: number, j: number) => ((raw[r * 2048 + 2 * j] >>> 16) | (raw[r * 2048 + 2 * j + 1] & 0xffff0000)) >>> 0;
    if (fileBackedBytes() === before) {
      const all = new Uint32Array((t.dataSync() as Int32Array).buffer);
      for (let r = 0; r < 4096; r += 97) expect(all[r * 1024 + 7]).toBe(word(r, 7));
      t.dispose();
      f.close();
      ctx.skip(`${os.tmpdir()}'s page cache does not map as huge pages here: the table was read into memory of its own`);
    }
    expect(fileBackedBytes() - before).toBe(16 * MiB);
    expect(status('RssFile') - file0).toBeLessThan(2);
    expect(status('RssAnon') - anon0).toBeLessThan(2);
    const rows = tf.tidy(() => tf.gather(t, tf.tensor1d([5, 4000], 'int32')).dataSync() as Int32Array);
    const got = new Uint32Array(rows.buffer);
    for (const j of [0, 1, 511, 1023]) {
      expect(got[j]).toBe(word(5, j));
      expect(got[1024 + j]).toBe(word(4000, j));
    }
    // Two rows' pages and their neighbours (at most a 2 MiB huge page each), not the 16 MiB table.
    expect(status('RssFile') - file0).toBeLessThan(5);
    const all = new Uint32Array((t.dataSync() as Int32Array).buffer);
    for (let r = 0; r < 4096; r += 97) expect(all[r * 1024 + 7]).toBe(word(r, 7));
    expect(status('RssFile') - file0).toBeGreaterThan(15);
    t.dispose();
    expect(fileBackedBytes()).toBe(before);
    f.close();

    const bad = Float32Array.from(v);
    bad[3 * MiB + 1] = Number.NaN;
    const badFile = path.join(tmp, `lazy-nan${n++}.safetensors`);
    writeSafetensors(badFile, [{ name: 'e', dtype: 'BF16', shape: [4096, 2048], data: bad }]);
    const g = SafetensorsFile.open(badFile);
    const numTensors = tf.memory().numTensors;
    expect(oneLineError(() => readTensorNative(g.location('e'), [4096, 2048], { packed: true, lazy: true })))
      .toMatch(/1 non-finite value\(s\), first NaN at flat index 3145729/);
    expect(fileBackedBytes()).toBe(before);
    expect(tf.memory().numTensors).toBe(numTensors);
    g.close();
  });

  it('not mapped: a misaligned tensor, MINICPMV_MAP_WEIGHTS=0, a tensor under 1 MiB; a non-finite value is refused and leaves no mapping', async () => {
    await initBackend('tensorflow');
    const a = values(MiB + 8, 3), small = values(1000, 4);
    const file = path.join(tmp, `unaligned${n++}.safetensors`);
    // A 2-element tensor first: 'a' starts 8 bytes past a multiple of 64.
    writeSafetensors(file, [
      { name: 'x', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) },
      { name: 'a', dtype: 'F32', shape: [a.length], data: a },
      { name: 's', dtype: 'F32', shape: [small.length], data: small },
    ]);
    const f = SafetensorsFile.open(file);
    expect(f.location('a').offset % 64).toBe(8);
    const before = fileBackedBytes();
    const ta = readTensorNative(f.location('a'), [a.length])!;
    const ts = readTensorNative(f.location('s'), [small.length])!;
    expect(fileBackedBytes()).toBe(before);
    expect(firstDiff(ta.dataSync(), a)).toBe(-1);
    expect(firstDiff(ts.dataSync(), small)).toBe(-1);
    tf.dispose([ta, ts]);
    f.close();

    const aligned = path.join(tmp, `aligned${n++}.safetensors`);
    writeSafetensors(aligned, [{ name: 'a', dtype: 'F32', shape: [a.length], data: a }]);
    const g = SafetensorsFile.open(aligned);
    process.env.MINICPMV_MAP_WEIGHTS = '0';
    try {
      const t = readTensorNative(g.location('a'), [a.length])!;
      expect(fileBackedBytes()).toBe(before);
      expect(firstDiff(t.dataSync(), a)).toBe(-1);
      t.dispose();
    } finally {
      delete process.env.MINICPMV_MAP_WEIGHTS;
    }
    g.close();

    const bad = Float32Array.from(a);
    bad[MiB + 5] = Number.POSITIVE_INFINITY;
    const badFile = path.join(tmp, `inf${n++}.safetensors`);
    writeSafetensors(badFile, [{ name: 'a', dtype: 'F32', shape: [bad.length], data: bad }]);
    const h = SafetensorsFile.open(badFile);
    const numTensors = tf.memory().numTensors;
    expect(oneLineError(() => readTensorNative(h.location('a'), [bad.length]))).toMatch(/1 non-finite value\(s\), first Infinity at flat index 1048581/);
    expect(fileBackedBytes()).toBe(before);
    expect(tf.memory().numTensors).toBe(numTensors);
    h.close();
  });
});
