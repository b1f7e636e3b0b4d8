// One view over a checkpoint directory, whatever its layout:
//   - 'hf-sharded': `model.safetensors.index.json` + the shards it names (the real MiniCPM-V: 2 shards);
//   - 'hf-single':  one `model.safetensors`;
//   - 'converted':  this project's layout (`minicpmv-manifest.json` + vision/resampler/llm files, docs/weights.md).
// Only headers are read when opening; tensor data is read per tensor on demand.
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsError, SafetensorsFile, type TensorInfo } from './safetensors.ts';
import { UserError } from '../errors.ts';
import { MiB, readRegularText } from '../files.ts';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
export const MANIFEST_FILE = 'minicpmv-manifest.json';
export const MANIFEST_FORMAT = 'minicpmv-ts-weights';
export const MANIFEST_VERSION = 1;

export class CheckpointError extends UserError {}

export type CheckpointLayout = 'hf-sharded' | 'hf-single' | 'converted';

export interface ManifestFile { name: string; bytes: number; sha256: string; tensors: number }
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: number;
  dtype: 'f32' | 'f16' | 'bf16';
  source: { configSha256: string; files: { name: string; bytes: number }[] };
  files: ManifestFile[];
  tensors: Record<string, string>; // tensor name -> file name
}

export class Checkpoint {
  /** Tensor key -> the open file holding it, in the layout's key order. */
  private readonly where: Map<string, SafetensorsFile>;

  constructor(readonly dir: string, readonly layout: CheckpointLayout, readonly files: SafetensorsFile[],
    where: Map<string, SafetensorsFile>, readonly manifest?: Manifest) {
    this.where = where;
  }

  /** Keys in layout order: index order (sorted in HF indexes), manifest order, or file data order. */
  keys(): string[] {
    return [...this.where.keys()];
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  /** The file holding `key` (absolute path). */
  fileOf(key: string): string {
    return this.file(key).path;
  }

  info(key: string): TensorInfo {
    return this.file(key).info(key);
  }

  location(key: string): ReturnType<SafetensorsFile['location']> {
    return this.file(key).location(key);
  }

  readFloat32(key: string): Float32Array {
    return this.file(key).readFloat32(key);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private file(key: string): SafetensorsFile {
    const f = this.where.get(key);
    if (!f) throw new CheckpointError(`${this.dir}: checkpoint has no tensor "${key}"`);
    return f;
  }
}

/** An index or manifest (a regular file of at most 64 MiB: the real index is 70 kB) parsed as JSON. */
function readJson(file: string): unknown {
  const text = readRegularText(file, file, 64 * MiB, (m) => new CheckpointError(m));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A file name from an index/manifest: a plain name in the checkpoint directory, never a path. */
function checkFileName(name: unknown, source: string, what: string): string {
  if (typeof name !== 'string' || name === '' || name !== path.basename(name) || name === '.' || name === '..') {
    throw new CheckpointError(`${source}: ${what} ${JSON.stringify(name)} must be a file name in the same directory`);
  }
  return name;
}

/** Open files named by a key -> file map; every mapped key must be in its file and every file key mapped. */
function openMapped(dir: string, source: string, map: Map<string, string>, fileOrder: string[]):
  { files: SafetensorsFile[]; where: Map<string, SafetensorsFile> } {
  const opened = new Map<string, SafetensorsFile>();
  try {
    for (const name of fileOrder) {
      const p = path.join(dir, name);
      if (!fs.existsSync(p)) throw new CheckpointError(`${source} names file "${name}", which is missing from ${dir}`);
      opened.set(name, SafetensorsFile.open(p));
    }
    const where = new Map<string, SafetensorsFile>();
    for (const [key, name] of map) {
      const f = opened.get(name)!;
      if (!f.has(key)) throw new CheckpointError(`${source} maps tensor "${key}" to "${name}", but that file has no such tensor`);
      where.set(key, f);
    }
    for (const [name, f] of opened) {
      for (const key of f.keys()) {
        const mapped = map.get(key);
        if (mapped !== name) {
          throw new CheckpointError(mapped === undefined
            ? `${f.path} holds tensor "${key}", which ${source} does not list`
            : `${f.path} holds tensor "${key}", but ${source} maps it to "${mapped}"`);
        }
      }
    }
    return { files: [...opened.values()], where };
  } catch (e) {
    for (const f of opened.values()) f.close();
    throw e;
  }
}

function openIndexed(dir: string): Checkpoint {
  const indexPath = path.join(dir, INDEX_FILE);
  const index = readJson(indexPath);
  if (!isObject(index) || !isObject(index.weight_map)) {
    throw new CheckpointError(`${indexPath}: expected an object with a "weight_map" object`);
  }
  const map = new Map<string, string>();
  const order: string[] = [];
  for (const [key, name] of Object.entries(index.weight_map)) {
    map.set(key, checkFileName(name, indexPath, `weight_map["${key}"]`));
    if (!order.includes(name as string)) order.push(name as string);
  }
  const { files, where } = openMapped(dir, indexPath, map, order);
  return new Checkpoint(dir, 'hf-sharded', files, where);
}

/** Parse and check `minicpmv-manifest.json` (structure only; `verifyManifestChecksums` hashes the files). */
export function readManifest(dir: string): Manifest {
  const p = path.join(dir, MANIFEST_FILE);
  const m = readJson(p);
  if (!isObject(m) || m.format !== MANIFEST_FORMAT) throw new CheckpointError(`${p}: "format" must be "${MANIFEST_FORMAT}"`);
  if (m.formatVersion !== MANIFEST_VERSION) {
    throw new CheckpointError(`${p}: formatVersion ${JSON.stringify(m.formatVersion)} is not supported (this code reads version ${MANIFEST_VERSION})`);
  }
  if (!['f32', 'f16', 'bf16'].includes(m.dtype as string)) throw new CheckpointError(`${p}: "dtype" must be f32, f16 or bf16`);
  if (!Array.isArray(m.files) || !isObject(m.tensors)) throw new CheckpointError(`${p}: needs "files" (list) and "tensors" (object)`);
  for (const f of m.files) {
    if (!isObject(f)) throw new CheckpointError(`${p}: every "files" entry must be an object`);
    checkFileName(f.name, p, 'file');
    if (!Number.isSafeInteger(f.bytes) || typeof f.sha256 !== 'string') {
      throw new CheckpointError(`${p}: file "${f.name}" needs integer "bytes" and string "sha256"`);
    }
  }
  return m as unknown as Manifest;
}

function openConverted(dir: string): Checkpoint {
  const p = path.join(dir, MANIFEST_FILE);
  const manifest = readManifest(dir);
  const names = manifest.files.map((f) => f.name);
  const map = new Map<string, string>();
  for (const [key, name] of Object.entries(manifest.tensors)) {
    if (!names.includes(name)) throw new CheckpointError(`${p}: tensor "${key}" maps to "${name}", which "files" does not list`);
    map.set(key, name);
  }
  for (const f of manifest.files) {
    const fp = path.join(dir, f.name);
    if (!fs.existsSync(fp)) throw new CheckpointError(`${p} names file "${f.name}", which is missing from ${dir}`);
    if (fs.statSync(fp).size !== f.bytes) {
      throw new CheckpointError(`${fp}: size ${fs.statSync(fp).size} bytes differs from the manifest's ${f.bytes}; the file was changed or truncated`);
    }
  }
  const { files, where } = openMapped(dir, p, map, names);
  return new Checkpoint(dir, 'converted', files, where, manifest);
}

/**
 * Open a checkpoint directory. Layout detection: a manifest means the converted layout, else an HF index,
 * else a single `model.safetensors`. Errors name the directory and the file that is missing or wrong.
 */
export function openCheckpoint(dir: string): Checkpoint {
  if (!fs.existsSync(dir)) throw new CheckpointError(`${dir}: checkpoint directory does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: is not a directory`);
  try {
    if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return openConverted(dir);
    if (fs.existsSync(path.join(dir, INDEX_FILE))) return openIndexed(dir);
    if (fs.existsSync(path.join(dir, SINGLE_FILE))) {
      const f = SafetensorsFile.open(path.join(dir, SINGLE_FILE));
      return new Checkpoint(dir, 'hf-single', [f], new Map(f.keys().map((k) => [k, f])));
    }
  } catch (e) {
    if (e instanceof SafetensorsError || e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${dir}: cannot open checkpoint (${(e as Error).message})`);
  }
  throw new CheckpointError(`${dir}: no checkpoint found (looked for ${MANIFEST_FILE}, ${INDEX_FILE}, ${SINGLE_FILE})`);
}
