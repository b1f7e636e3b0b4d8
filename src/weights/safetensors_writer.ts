// Safetensors writer (the format is described in safetensors.ts): a streaming writer that never holds the
// whole checkpoint, and a one-call `writeSafetensors` for small files.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { f32BitsToBf16, f32BitsToF16 } from './dtype.ts';
import { DTYPE_BYTES, MAX_IO_CHUNK, numel, SafetensorsError, writeFully } from './safetensors.ts';

export type WriteDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
export type TensorData = Float32Array | Int32Array | Uint8Array | BigInt64Array;
export interface TensorToWrite { name: string; dtype: WriteDtype; shape: number[]; data: TensorData }
export interface TensorHeader { name: string; dtype: WriteDtype; shape: number[] }

/** Encode `data` as `dtype` bytes. Float data may become F32/F16/BF16 (RNE); Int32Array I32/I64; etc. */
export function encodeTensorData(dtype: WriteDtype, data: TensorData, name = '?'): Uint8Array {
  const bad = () => new SafetensorsError(`tensor "${name}": cannot write ${data.constructor.name} as ${dtype}`);
  if (data instanceof Float32Array) {
    if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (dtype !== 'F16' && dtype !== 'BF16') throw bad();
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    const out = new Uint16Array(data.length);
    if (dtype === 'BF16') for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16(bits[i]);
    else for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]);
    return new Uint8Array(out.buffer);
  }
  if (data instanceof Int32Array) {
    if (dtype === 'I32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (dtype !== 'I64') throw bad();
    const out = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]);
    return new Uint8Array(out.buffer);
  }
  if (data instanceof BigInt64Array) {
    if (dtype !== 'I64') throw bad();
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof Uint8Array && dtype === 'U8') return data;
  throw bad();
}

/**
 * The data of a file this writer makes starts at a multiple of 64 bytes, and so does every tensor that follows
 * only tensors of whole 64-byte multiples (see `alignedOrder`): such a weight can be used where it lies in the
 * file's mapping (the native reader's FileMap; TensorFlow takes no buffer less aligned).
 */
export const DATA_ALIGN = 64;

/**
 * `items` with those of a whole number of DATA_ALIGN bytes first, each group in its given order: written in
 * this order, every tensor of the first group starts aligned. (In MiniCPM-V only a few small biases, e.g. the
 * vision MLP's [4304], are not a multiple of 64 bytes.)
 */
export function alignedOrder<T>(items: T[], bytes: (t: T) => number): T[] {
  const whole = (t: T) => bytes(t) % DATA_ALIGN === 0;
  return [...items.filter(whole), ...items.filter((t) => !whole(t))];
}

/**
 * Header bytes without the length prefix: the JSON padded with spaces (as the format allows and the Python
 * library does, to a multiple of 8) so that the data starts at a multiple of DATA_ALIGN bytes.
 */
export function buildHeader(tensors: TensorHeader[], metadata?: Record<string, string>):
  { header: Uint8Array; offsets: number[] } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  let pos = 0;
  const offsets: number[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new SafetensorsError(`tensor name "${t.name}" is reserved or repeated`);
    seen.add(t.name);
    if (!(t.dtype in DTYPE_BYTES)) throw new SafetensorsError(`tensor "${t.name}": unknown dtype ${t.dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor "${t.name}": shape ${JSON.stringify(t.shape)} must be non-negative integers`);
    }
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    offsets.push(pos);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  offsets.push(pos);
  let json = JSON.stringify(obj);
  const raw = new TextEncoder().encode(json);
  const pad = (DATA_ALIGN - ((8 + raw.byteLength) % DATA_ALIGN)) % DATA_ALIGN;
  json += ' '.repeat(pad);
  return { header: new TextEncoder().encode(json), offsets };
}

/**
 * Streaming writer: the header (names, dtypes, shapes) first, then tensor data in that order, each tensor
 * either whole (`writeTensor`) or in consecutive pieces (`append`), so a converter or a random-weight
 * generator never holds the whole checkpoint. `close()` checks every byte was written; `abort()` removes
 * the partial file.
 */
export class SafetensorsWriter {
  readonly path: string;
  private fd: number | null;
  private readonly tensors: TensorHeader[];
  private readonly offsets: number[];
  private readonly dataStart: number;
  private index = 0; // current tensor
  private written = 0; // bytes written into the current tensor

  private readonly hash?: Hash;
  private digestHex?: string;
  /** Total bytes written so far (the file size once closed). */
  bytesWritten = 0;

  /** With `sha256`, the file's hash is computed while writing (bytes go out in file order); see `sha256()`. */
  constructor(path: string, tensors: TensorHeader[], metadata?: Record<string, string>, opts: { sha256?: boolean } = {}) {
    const { header, offsets } = buildHeader(tensors, metadata);
    if (opts.sha256) this.hash = createHash('sha256');
    this.path = path;
    this.tensors = tensors.map((t) => ({ ...t, shape: [...t.shape] }));
    this.offsets = offsets;
    this.dataStart = 8 + header.byteLength;
    try {
      this.fd = fs.openSync(path, 'w');
    } catch (e) {
      throw new SafetensorsError(`${path}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    writeFully(this.fd, len, 0);
    writeFully(this.fd, header, 8);
    this.hash?.update(len).update(header);
    this.bytesWritten = 8 + header.byteLength;
  }

  /** Hex sha256 of the complete file (needs `{ sha256: true }` and a successful `close()`). */
  sha256(): string {
    if (!this.digestHex) throw new SafetensorsError(`${this.path}: sha256 is only available after close() of a writer made with { sha256: true }`);
    return this.digestHex;
  }

  /** Name of the tensor the next `append` writes into (undefined when all are complete). */
  get current(): string | undefined {
    this.skipEmpty();
    return this.tensors[this.index]?.name;
  }

  /** Append the next elements of the current tensor (float data is encoded to its dtype). */
  append(data: TensorData): void {
    this.skipEmpty();
    const t = this.tensors[this.index];
    if (!t) throw new SafetensorsError(`${this.path}: all ${this.tensors.length} tensors already written`);
    this.appendEncoded(encodeTensorData(t.dtype, data, t.name));
  }

  /** Append bytes already in the current tensor's dtype (a whole number of elements). */
  appendEncoded(bytes: Uint8Array): void {
    this.skipEmpty();
    const t = this.tensors[this.index];
    if (!t) throw new SafetensorsError(`${this.path}: all ${this.tensors.length} tensors already written`);
    if (bytes.byteLength % DTYPE_BYTES[t.dtype] !== 0) {
      throw new SafetensorsError(`${this.path}: tensor "${t.name}": ${bytes.byteLength} bytes is not a whole number of ${t.dtype} elements`);
    }
    const need = this.offsets[this.index + 1] - this.offsets[this.index];
    if (this.written + bytes.byteLength > need) {
      throw new SafetensorsError(`${this.path}: tensor "${t.name}" [${t.shape.join(', ')}] ${t.dtype} takes ${need} bytes; got ${this.written + bytes.byteLength}`);
    }
    writeFully(this.handle(), bytes, this.dataStart + this.offsets[this.index] + this.written);
    this.hash?.update(bytes);
    this.written += bytes.byteLength;
    this.bytesWritten += bytes.byteLength;
    if (this.written === need) {
      this.index++;
      this.written = 0;
    }
  }

  /** Write one whole tensor; it must be the next one declared in the header. */
  writeTensor(name: string, data: TensorData): void {
    // Empty tensors need no bytes: skip any before `name`, and accept `name` itself when empty.
    while (this.written === 0 && this.isEmpty(this.index) && this.tensors[this.index].name !== name) this.index++;
    const t = this.tensors[this.index];
    if (!t || t.name !== name) {
      throw new SafetensorsError(`${this.path}: expected tensor "${t?.name ?? '(none left)'}" next, got "${name}"`);
    }
    if (this.written !== 0) throw new SafetensorsError(`${this.path}: tensor "${name}" was already partly written`);
    if (data.length !== numel(t.shape)) {
      throw new SafetensorsError(`${this.path}: tensor "${name}" has shape [${t.shape.join(', ')}] (${numel(t.shape)} elements) but ${data.length} values were given`);
    }
    if (this.isEmpty(this.index)) this.index++;
    else this.append(data);
  }

  close(): void {
    this.skipEmpty();
    if (this.index < this.tensors.length) {
      const name = this.tensors[this.index].name;
      this.abort();
      throw new SafetensorsError(`${this.path}: closed before tensor "${name}" was complete; file removed`);
    }
    fs.closeSync(this.handle());
    this.fd = null;
    if (this.hash) this.digestHex = this.hash.digest('hex');
  }

  /** Close and delete the partial file. */
  abort(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.path, { force: true });
  }

  private isEmpty(i: number): boolean {
    return i < this.tensors.length && this.offsets[i + 1] === this.offsets[i];
  }

  private skipEmpty(): void {
    while (this.written === 0 && this.isEmpty(this.index)) this.index++;
  }

  private handle(): number {
    if (this.fd === null) throw new SafetensorsError(`${this.path}: writer is closed`);
    return this.fd;
  }
}

/** Write tensors in the given order (data offsets follow that order). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  for (const t of tensors) {
    if (t.data.length !== numel(t.shape)) {
      throw new SafetensorsError(`${path}: tensor "${t.name}" has shape [${t.shape.join(', ')}] (${numel(t.shape)} elements) but ${t.data.length} values were given`);
    }
  }
  const w = new SafetensorsWriter(path, tensors, metadata);
  try {
    for (const t of tensors) w.writeTensor(t.name, t.data);
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}
