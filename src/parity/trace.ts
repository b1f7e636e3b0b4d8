// Recording activations to disk as they are produced: each selected hook's
// tensor is appended to a scratch file, so tracing the full-size model never
// holds every activation in memory; at the end the scratch bytes are copied
// into a float32 safetensors file (keys = hook names, execution order) and a
// JSON summary of every key is written beside it.
import fs from 'node:fs';
import path from 'node:path';
import type * as tf from '../tfjs.ts';
import { SafetensorsWriter, type TensorHeader } from '../weights/safetensors_writer.ts';

export interface KeyStats {
  shape: number[];
  dtype: 'F32' | 'I32';
  mean: number;
  std: number;
  min: number;
  max: number;
  absMax: number;
  nan: number;
  inf: number;
}

export function tensorStats(data: Float32Array | Int32Array): Omit<KeyStats, 'shape' | 'dtype'> {
  let n = 0, sum = 0, sq = 0, min = Infinity, max = -Infinity, absMax = 0, nan = 0, inf = 0;
  for (const v of data) {
    if (Number.isNaN(v)) { nan++; continue; }
    if (!Number.isFinite(v)) { inf++; continue; }
    n++; sum += v; sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (Math.abs(v) > absMax) absMax = Math.abs(v);
  }
  const mean = n ? sum / n : NaN;
  return { mean, std: n ? Math.sqrt(Math.max(sq / n - mean * mean, 0)) : NaN, min, max, absMax, nan, inf };
}

export class ActivationRecorder {
  private readonly scratchPath: string;
  private readonly fd: number;
  private bytes = 0;
  readonly entries: (TensorHeader & { offset: number; length: number; stats: KeyStats })[] = [];

  constructor(readonly outPath: string) {
    fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
    this.scratchPath = `${outPath}.partial-${process.pid}`;
    this.fd = fs.openSync(this.scratchPath, 'w');
  }

  has(key: string): boolean {
    return this.entries.some((e) => e.name === key);
  }

  /** Appends one activation (its data is copied out of TF.js now). A key seen again replaces the first. */
  record(key: string, t: tf.Tensor | { shape: number[]; data: Float32Array | Int32Array }): void {
    const isTensor = 'dataSync' in t;
    const raw = isTensor ? (t as tf.Tensor).dataSync() : t.data;
    const dtype = raw instanceof Int32Array ? 'I32' : 'F32';
    const data = raw instanceof Int32Array ? raw : raw instanceof Float32Array ? raw : Float32Array.from(raw as ArrayLike<number>);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    fs.writeSync(this.fd, bytes, 0, bytes.length, this.bytes);
    const shape = [...t.shape];
    const stats = { shape, dtype, ...tensorStats(data) } as KeyStats;
    const old = this.entries.findIndex((e) => e.name === key);
    if (old >= 0) this.entries.splice(old, 1);
    this.entries.push({ name: key, dtype, shape, offset: this.bytes, length: bytes.length, stats });
    this.bytes += bytes.length;
  }

  /** Writes FILE.safetensors and FILE.summary.json; removes the scratch file. */
  finish(metadata: Record<string, string> = {}): { file: string; summary: string } {
    fs.closeSync(this.fd);
    const summaryPath = this.outPath.replace(/\.safetensors$/, '') + '.summary.json';
    try {
      const writer = new SafetensorsWriter(this.outPath, this.entries.map(({ name, dtype, shape }) => ({ name, dtype, shape })), metadata);
      const rfd = fs.openSync(this.scratchPath, 'r');
      const buf = Buffer.allocUnsafe(1 << 24);
      try {
        for (const e of this.entries) {
          for (let done = 0; done < e.length;) {
            const n = fs.readSync(rfd, buf, 0, Math.min(buf.length, e.length - done), e.offset + done);
            writer.appendEncoded(buf.subarray(0, n));
            done += n;
          }
        }
      } finally {
        fs.closeSync(rfd);
      }
      writer.close();
      const summary = Object.fromEntries(this.entries.map((e) => [e.name, e.stats]));
      fs.writeFileSync(summaryPath, JSON.stringify(summary, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n');
    } finally {
      fs.rmSync(this.scratchPath, { force: true });
    }
    return { file: this.outPath, summary: summaryPath };
  }

  abort(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
    fs.rmSync(this.scratchPath, { force: true });
  }
}
