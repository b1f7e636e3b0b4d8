// Safetensors reader in plain Node (no native dependency); the writer is safetensors_writer.ts.
//
// Format (huggingface/safetensors, docs "format"): 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
// `{ "__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]} ... }`, then the data
// section; offsets are relative to the start of the data section. The Python library pads the header with
// spaces to a multiple of 8 so the data section is 8-byte aligned.
//
// Reads are positioned (`fs.readSync` with a position) per tensor and in chunks, never a whole-file
// buffer: the real checkpoint is 6.9 GB in two shards and `llm.model.embed_tokens.weight` alone is
// 566 MB of bf16 (1.13 GB as f32).
import fs from 'node:fs';
import os from 'node:os';
import { f16ToF32Table } from './dtype.ts';
import { openRegularFile } from '../files.ts';
import { UserError } from '../errors.ts';
import { HeaderJsonError, JsonFloat, parseHeaderJson, type JsonValue } from './header_json.ts';

export type STDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<STDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export class SafetensorsError extends UserError {}

export interface TensorInfo { dtype: STDtype; shape: number[]; begin: number; end: number }

/** A tensor's bytes in an open file (SafetensorsFile.location). */
export interface TensorLocation {
  /** The path, for messages only: reads go through `fd`. */
  file: string;
  fd: number;
  /** "device:inode" and byte size of the file when it was opened and validated. */
  fileId: string;
  size: number;
  offset: number;
  dtype: STDtype;
  count: number;
}

/** Largest single `readSync`/`writeSync` (Node rejects lengths >= 2 GiB). */
export const MAX_IO_CHUNK = 1 << 30;
/** Scratch buffer size for reads that convert dtype on the fly. */
const CONVERT_CHUNK = 1 << 26;
/** A header this large is certainly not a checkpoint (the real one is ~90 kB). */
const MAX_HEADER_BYTES = 100_000_000;

if (os.endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

/**
 * bf16 -> f32 is a 16-bit shift. `half` views the same buffer as `bits`; the n
 * bf16 values sit in its second half (u16 index n..2n-1). A plain monomorphic
 * loop: V8 runs it at about a nanosecond per element.
 */
function widenBf16InPlace(bits: Uint32Array, half: Uint16Array, n: number): void {
  for (let i = 0; i < n; i++) bits[i] = half[n + i] << 16;
}

/** Product of a shape as a safe integer (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Positioned read of `length` bytes at absolute file `position` into `dst[dstOffset..]`, in pieces of at
 * most `chunk` bytes. Positions are plain numbers (exact to 2^53), so offsets past 2 GiB are fine.
 */
export function readFully(fd: number, dst: Uint8Array, dstOffset: number, length: number, position: number,
  chunk = MAX_IO_CHUNK, what = 'file'): void {
  let done = 0;
  while (done < length) {
    const want = Math.min(chunk, length - done);
    const got = fs.readSync(fd, dst, dstOffset + done, want, position + done);
    if (got <= 0) throw new SafetensorsError(`${what}: unexpected end of file at byte ${position + done}`);
    done += got;
  }
}

/** Positioned write of all of `src` at `position`, in pieces of at most `chunk` bytes. */
export function writeFully(fd: number, src: Uint8Array, position: number, chunk = MAX_IO_CHUNK): void {
  let done = 0;
  while (done < src.byteLength) {
    const n = fs.writeSync(fd, src, done, Math.min(chunk, src.byteLength - done), position + done);
    done += n;
  }
}

const KNOWN_DTYPES = new Set<string>(Object.keys(DTYPE_BYTES));
/** Dtypes the format defines that this project does not read. */
const OTHER_DTYPES = new Set(['U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/**
 * Parse and validate a header against the data-section size, with the reference implementation's rules
 * (huggingface/safetensors `tensor.rs`, `read_metadata` + `Metadata::validate`): a JSON object of tensor
 * entries and an optional `__metadata__` map of strings; no key twice; every entry has `dtype`, `shape` and
 * `data_offsets`, and its byte count is shape x dtype size; in offset order the tensors tile the data section
 * from byte 0 to its last byte, with no gap, no overlap and nothing after the last tensor. JSON whitespace
 * before the opening brace is accepted, as the reference reader does (it keeps that room for writers that
 * page-align the data). Errors name `file`, the tensor and the field.
 */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, file: string):
  { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  let json: JsonValue;
  try {
    // ignoreBOM: a byte-order mark stays in the text, and the JSON parser refuses it as serde_json does.
    json = parseHeaderJson(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes));
  } catch (e) {
    if (e instanceof HeaderJsonError && e.duplicatePath) {
      const [tensor] = e.duplicatePath;
      const key = e.message.replace(/^duplicate key /, '');
      throw new SafetensorsError(tensor === undefined
        ? `${file}: header has the key ${key} twice; keys must be unique`
        : tensor === '__metadata__'
          ? `${file}: __metadata__ has the key ${key} twice`
          : `${file}: tensor "${tensor}": header entry has the field ${key} twice`);
    }
    throw new SafetensorsError(`${file}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!(json instanceof Map)) throw new SafetensorsError(`${file}: header must be a JSON object`);
  const metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [key, value] of json) {
    if (key === '__metadata__') {
      if (value === null) continue; // Option<HashMap>: null is "no metadata" in the reference reader
      if (!(value instanceof Map)) throw new SafetensorsError(`${file}: __metadata__ must be an object of strings`);
      for (const [mk, mv] of value) {
        if (typeof mv !== 'string') throw new SafetensorsError(`${file}: __metadata__["${mk}"] is not a string`);
        metadata[mk] = mv;
      }
      continue;
    }
    entries.push([key, parseEntry(key, value, dataBytes, file)]);
  }
  // Tiling check in data order (Metadata::validate); the format allows any header order.
  entries.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let covered = 0;
  for (let i = 0; i < entries.length; i++) {
    const [k, t] = entries[i];
    if (t.begin < covered) {
      const [pk, p] = entries[i - 1];
      throw new SafetensorsError(`${file}: tensor "${k}" bytes [${t.begin}, ${t.end}) overlap "${pk}" [${p.begin}, ${p.end})`);
    }
    if (t.begin > covered) {
      throw new SafetensorsError(i === 0
        ? `${file}: tensor "${k}" starts at byte ${t.begin} of the data section; the first tensor must start at byte 0 (no gaps allowed)`
        : `${file}: tensor "${k}" starts at byte ${t.begin} but "${entries[i - 1][0]}" ends at byte ${covered}: a gap of ${t.begin - covered} bytes (no gaps allowed)`);
    }
    covered = t.end;
  }
  if (covered !== dataBytes) {
    throw new SafetensorsError(`${file}: ${dataBytes - covered} bytes after the last tensor (the tensors cover ${covered} of the ` +
      `${dataBytes}-byte data section; the file must end with the last tensor)`);
  }
  return { metadata, tensors: new Map(entries) };
}

const isSize = (d: unknown): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0;
/** A header value for messages, numbers as written (`2.0` stays `2.0`). */
function show(v: JsonValue | undefined): string {
  if (v instanceof Map) return 'an object';
  if (v instanceof JsonFloat) return v.raw;
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

function parseEntry(key: string, value: JsonValue, dataBytes: number, file: string): TensorInfo {
  const where = `${file}: tensor "${key}"`;
  if (!(value instanceof Map)) throw new SafetensorsError(`${where}: header entry must be an object, got ${show(value)}`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!value.has(field)) throw new SafetensorsError(`${where}: header entry has no "${field}" field`);
  }
  const dtype = value.get('dtype'), shape = value.get('shape'), off = value.get('data_offsets');
  if (typeof dtype !== 'string' || !KNOWN_DTYPES.has(dtype)) {
    const why = typeof dtype === 'string' && OTHER_DTYPES.has(dtype) ? 'unsupported' : 'unknown';
    throw new SafetensorsError(`${where}: ${why} dtype ${show(dtype)} (supported: ${[...KNOWN_DTYPES].join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isSize)) {
    throw new SafetensorsError(`${where}: shape ${show(shape)} must be a list of non-negative integers (below 2^53)`);
  }
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isSize)) {
    throw new SafetensorsError(`${where}: data_offsets ${show(off)} must be [begin, end] non-negative integers (below 2^53)`);
  }
  const [begin, end] = off as number[];
  if (end < begin || end > dataBytes) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] out of range (data section is ${dataBytes} bytes)`);
  }
  const dims = shape as number[];
  const bytes = numel(dims) * DTYPE_BYTES[dtype as STDtype];
  if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
    throw new SafetensorsError(`${where}: shape [${dims.join(', ')}] x ${dtype} needs ${bytes} bytes but data_offsets span ${end - begin}`);
  }
  return { dtype: dtype as STDtype, shape: [...dims], begin, end };
}

export interface OpenOptions {
  /** Largest single positioned read; tests pass a tiny value to exercise the chunking. */
  chunkBytes?: number;
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataStart: number;
  /** The file's identity and size when it was opened and its header validated (fstat): "device:inode", bytes. */
  readonly fileId: string;
  readonly size: number;
  private fd: number | null;
  private readonly tensors: Map<string, TensorInfo>;
  private readonly chunk: number;

  private constructor(path: string, fd: number, fileId: string, size: number, dataStart: number,
    metadata: Record<string, string>, tensors: Map<string, TensorInfo>, chunk: number) {
    this.path = path;
    this.fd = fd;
    this.fileId = fileId;
    this.size = size;
    this.dataStart = dataStart;
    this.metadata = metadata;
    this.tensors = tensors;
    this.chunk = chunk;
  }

  /** Open and validate the header; tensor data is read on demand. */
  static open(path: string, opts: OpenOptions = {}): SafetensorsFile {
    const chunk = opts.chunkBytes ?? MAX_IO_CHUNK;
    if (!(Number.isSafeInteger(chunk) && chunk >= 8 && chunk % 8 === 0 && chunk <= MAX_IO_CHUNK)) {
      throw new SafetensorsError(`chunkBytes must be a multiple of 8 in [8, ${MAX_IO_CHUNK}], got ${chunk}`);
    }
    // A regular file only: /dev/zero would pass the header checks forever, a named pipe would block. Every
    // later read goes through this descriptor (the native reader too), so the file validated here is the file
    // read, whatever happens to the path; the native reader re-checks identity and size with fstat.
    const { fd, bytes: size, id: fileId } = openRegularFile(path, path, (m) => new SafetensorsError(m));
    try {
      if (size < 8) throw new SafetensorsError(`${path}: file is ${size} bytes, too short for the 8-byte header length`);
      const lenBuf = new Uint8Array(8);
      readFully(fd, lenBuf, 0, 8, 0, chunk, path);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(size - 8)) {
        throw new SafetensorsError(`${path}: header length ${n} is larger than the rest of the file (${size - 8} bytes); truncated or not safetensors`);
      }
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${path}: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
      if (n < 2n) throw new SafetensorsError(`${path}: header length ${n} is too small for a JSON object`);
      const headerLen = Number(n);
      const header = new Uint8Array(headerLen);
      readFully(fd, header, 0, headerLen, 8, chunk, path);
      const { metadata, tensors } = parseHeader(header, size - 8 - headerLen, path);
      return new SafetensorsFile(path, fd, fileId, size, 8 + headerLen, metadata, tensors, chunk);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in data-offset order. */
  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  info(key: string): TensorInfo {
    const t = this.tensors.get(key);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor named "${key}"`);
    return { ...t, shape: [...t.shape] };
  }

  /** The tensor's bytes as stored. */
  readRaw(key: string): Uint8Array {
    const t = this.info(key);
    const out = new Uint8Array(t.end - t.begin);
    this.readBytes(key, t, out, 0, out.byteLength);
    return out;
  }

  /**
   * Where a tensor's bytes are, for the native reader: this file (path for messages; the open descriptor and
   * the identity and size it was validated with), absolute byte offset, dtype, element count.
   */
  location(key: string): TensorLocation {
    const t = this.info(key);
    return { file: this.path, fd: this.handle(), fileId: this.fileId, size: this.size, offset: this.dataStart + t.begin,
      dtype: t.dtype, count: numel(t.shape) };
  }

  /** Any dtype widened/narrowed to float32: BF16 is exact (u16 << 16), F16 exact, F64 rounded, ints converted. */
  readFloat32(key: string): Float32Array {
    const t = this.info(key);
    const n = numel(t.shape);
    const out = new Float32Array(n);
    if (t.dtype === 'F32') {
      this.readBytes(key, t, new Uint8Array(out.buffer), 0, n * 4);
      return out;
    }
    if (t.dtype === 'BF16') {
      // Read the bf16 bytes straight into the upper half of the output, then widen in place, front to back:
      // element i is read (bytes 2n+2i..) before its 4 output bytes (4i..4i+3) can overwrite anything unread.
      this.readBytes(key, t, new Uint8Array(out.buffer, n * 2, n * 2), 0, n * 2);
      widenBf16InPlace(new Uint32Array(out.buffer), new Uint16Array(out.buffer), n);
      return out;
    }
    const table = t.dtype === 'F16' ? f16ToF32Table() : undefined;
    this.readConverted(key, t, (buf, start, count) => {
      switch (t.dtype) {
        case 'F16': {
          const src = new Uint16Array(buf.buffer, 0, count);
          for (let i = 0; i < count; i++) out[start + i] = table![src[i]];
          break;
        }
        case 'F64': out.set(new Float64Array(buf.buffer, 0, count), start); break;
        case 'I64': {
          const src = new BigInt64Array(buf.buffer, 0, count);
          for (let i = 0; i < count; i++) out[start + i] = Number(src[i]);
          break;
        }
        case 'I32': out.set(new Int32Array(buf.buffer, 0, count), start); break;
        case 'I16': out.set(new Int16Array(buf.buffer, 0, count), start); break;
        case 'I8': out.set(new Int8Array(buf.buffer, 0, count), start); break;
        case 'U8': case 'BOOL': out.set(buf.subarray(0, count), start); break;
        default: throw new SafetensorsError(`${this.path}: tensor "${key}": cannot read ${t.dtype} as float32`);
      }
    });
    return out;
  }

  /** Integer dtypes as int32: I64 checked to fit, I16/I8/U8/BOOL widened. Float dtypes are an error. */
  readInt32(key: string): Int32Array {
    const t = this.info(key);
    const n = numel(t.shape);
    const out = new Int32Array(n);
    if (t.dtype === 'I32') {
      this.readBytes(key, t, new Uint8Array(out.buffer), 0, n * 4);
      return out;
    }
    if (!['I64', 'I16', 'I8', 'U8', 'BOOL'].includes(t.dtype)) {
      throw new SafetensorsError(`${this.path}: tensor "${key}" is ${t.dtype}, not an integer dtype; cannot read as int32`);
    }
    this.readConverted(key, t, (buf, start, count) => {
      switch (t.dtype) {
        case 'I64': {
          const src = new BigInt64Array(buf.buffer, 0, count);
          for (let i = 0; i < count; i++) {
            const v = src[i];
            if (v > 2147483647n || v < -2147483648n) {
              throw new SafetensorsError(`${this.path}: tensor "${key}" element ${start + i} = ${v} does not fit in int32`);
            }
            out[start + i] = Number(v);
          }
          break;
        }
        case 'I16': out.set(new Int16Array(buf.buffer, 0, count), start); break;
        case 'I8': out.set(new Int8Array(buf.buffer, 0, count), start); break;
        default: out.set(buf.subarray(0, count), start); break; // U8, BOOL
      }
    });
    return out;
  }

  readUint8(key: string): Uint8Array {
    const t = this.info(key);
    if (t.dtype !== 'U8' && t.dtype !== 'BOOL') {
      throw new SafetensorsError(`${this.path}: tensor "${key}" is ${t.dtype}; readUint8 needs U8 or BOOL`);
    }
    return this.readRaw(key);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private handle(): number {
    if (this.fd === null) throw new SafetensorsError(`${this.path}: file was closed`);
    return this.fd;
  }

  /** Read bytes [from, from+length) of a tensor's data into dst[0..]. */
  private readBytes(key: string, t: TensorInfo, dst: Uint8Array, from: number, length: number): void {
    readFully(this.handle(), dst, 0, length, this.dataStart + t.begin + from, this.chunk, `${this.path}: tensor "${key}"`);
  }

  /** Stream a tensor through a scratch buffer, `convert(buf, firstElement, count)` per piece. */
  private readConverted(key: string, t: TensorInfo, convert: (buf: Uint8Array, start: number, count: number) => void): void {
    const size = DTYPE_BYTES[t.dtype];
    const total = t.end - t.begin;
    const piece = Math.min(this.chunk, CONVERT_CHUNK, Math.max(total, 8)); // multiple of 8 keeps every dtype aligned
    const buf = new Uint8Array(piece - (piece % 8));
    for (let from = 0; from < total; from += buf.byteLength) {
      const len = Math.min(buf.byteLength, total - from);
      this.readBytes(key, t, buf, from, len);
      convert(buf, from / size, len / size);
    }
  }
}
