// The fuzz targets: each turns an input (bytes) into a call of the project's code the way a user's file
// reaches it, and the property is "returns, or throws the project's UserError; nothing else" (worker.ts
// adds bounded time and memory). Inputs are seeds from the repository, mutated by mutate.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { expectedTensors, tinyConfigJson } from '../../src/config.ts';
import { UserError } from '../../src/errors.ts';
import { loadConfig } from '../../src/config_file.ts';
import { decodeImage } from '../../src/image/decode.ts';
import { MiniCPMTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { SafetensorsFile } from '../../src/weights/safetensors.ts';
import { writeSafetensors } from '../../src/weights/safetensors_writer.ts';
import {
  applyByteOps, applyJpegOp, applyPngOp, applyProtoOp, applyTextOp, byteOps, jpegOp, jsonEdge, pngOp, protoOp, textOp,
} from './mutate.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.join(repoRoot, 'test', 'fixtures');

export interface FuzzTarget {
  name: string;
  what: string;
  /**
   * Mutated inputs; deterministic for a fast-check seed.
   */
  arbitrary(): fc.Arbitrary<Uint8Array>;
  /** Feed one input to the project's code; returning or throwing a UserError is a pass. */
  run(input: Uint8Array): void;
}

const read = (...p: string[]) => new Uint8Array(fs.readFileSync(path.join(...p)));
const enc = new TextEncoder();

/** The scratch directory of process `pid` (campaign.ts removes a killed worker's). */
export const scratchDirOf = (pid: number) => path.join(os.tmpdir(), `minicpmv-fuzz-scratch-${pid}`);

/** A scratch file per process for targets whose entry point takes a path. */
let scratchDir: string | undefined;
function scratch(name: string, bytes: Uint8Array): string {
  if (!scratchDir) fs.mkdirSync((scratchDir = scratchDirOf(process.pid)), { recursive: true });
  const p = path.join(scratchDir, name);
  fs.writeFileSync(p, bytes);
  return p;
}
export function removeScratch(): void {
  if (scratchDir) fs.rmSync(scratchDir, { recursive: true, force: true });
  scratchDir = undefined;
}

/** Pick a seed, then apply format-aware and generic edits (sometimes none of the latter). */
function mutated<Op>(seeds: () => Uint8Array[], formatOp: fc.Arbitrary<Op>, apply: (b: Uint8Array, op: Op) => Uint8Array,
  maxFormatOps = 4): fc.Arbitrary<Uint8Array> {
  let cache: Uint8Array[] | undefined;
  const all = () => (cache ??= seeds());
  return fc.record({
    seed: fc.nat(),
    format: fc.array(formatOp, { maxLength: maxFormatOps }),
    bytes: fc.option(byteOps(4), { freq: 3 }),
  }).map(({ seed, format, bytes }) => {
    const s = all();
    let b = s[seed % s.length];
    for (const op of format) b = apply(b, op);
    return bytes ? applyByteOps(b, bytes) : b;
  });
}

// --- safetensors ------------------------------------------------------------------------------------

function safetensorsSeeds(): Uint8Array[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-fuzz-seed-'));
  try {
    const p = path.join(dir, 'a.safetensors');
    writeSafetensors(p, [
      { name: 'llm.lm_head.weight', dtype: 'BF16', shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i - 6) },
      { name: 'vpm.pos_embed', dtype: 'F32', shape: [1, 2, 2], data: Float32Array.from([1, -2, 3.5, 1e-3]) },
      { name: 'scalar', dtype: 'F16', shape: [], data: Float32Array.from([0.5]) },
      { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      { name: 'ids', dtype: 'I64', shape: [3], data: Int32Array.from([1, 2, 2147483647]) },
      { name: 'idx', dtype: 'I32', shape: [2], data: Int32Array.from([-1, 7]) },
      { name: 'mask', dtype: 'U8', shape: [5], data: Uint8Array.from([0, 1, 2, 254, 255]) },
    ], { format: 'pt', note: 'seed' });
    const one = path.join(dir, 'b.safetensors');
    writeSafetensors(one, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]);
    return [read(p), read(one), read(fixtures, 'images', 'expected.safetensors')];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Header-level edits: a field of an entry set to an edge value or removed, an entry added or dropped. */
type HeaderOp = { k: 'set' | 'del' | 'dropEntry' | 'addEntry' | 'text' | 'len' | 'data'; entry: number; field: number; value: unknown;
  text: { k: 'dupKey' | 'bom' | 'lead' | 'floatInts' | 'trail'; n: number }; n: number };
const headerOp: fc.Arbitrary<HeaderOp> = fc.record({
  k: fc.constantFrom('set' as const, 'set' as const, 'set' as const, 'del' as const, 'dropEntry' as const, 'addEntry' as const,
    'text' as const, 'text' as const, 'len' as const, 'data' as const),
  entry: fc.nat(), field: fc.nat(), value: jsonEdge, text: textOp, n: fc.integer({ min: -16, max: 16 }),
});

function applyHeaderOps(file: Uint8Array, ops: HeaderOp[]): Uint8Array {
  if (file.length < 8) return file;
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  if (8 + n > file.length) return file;
  let header: Record<string, Record<string, unknown> | unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  } catch {
    return file;
  }
  let data = file.subarray(8 + n);
  let text: string | undefined;
  let lenDelta = 0;
  for (const op of ops) {
    const keys = Object.keys(header);
    const key = keys.length ? keys[op.entry % keys.length] : 'x';
    const entry = header[key];
    const field = ['dtype', 'shape', 'data_offsets', 'extra'][op.field % 4];
    if (op.k === 'set' && entry && typeof entry === 'object') (entry as Record<string, unknown>)[field] = op.value;
    else if (op.k === 'set') header[key] = op.value;
    else if (op.k === 'del' && entry && typeof entry === 'object') delete (entry as Record<string, unknown>)[field];
    else if (op.k === 'dropEntry') delete header[key];
    else if (op.k === 'addEntry') header[`t${op.entry % 7}`] = { dtype: 'F32', shape: [Math.abs(op.n)], data_offsets: [data.length, data.length + 4 * Math.abs(op.n)] };
    else if (op.k === 'text') text = applyTextOp(text ?? JSON.stringify(header), op.text);
    else if (op.k === 'len') lenDelta += op.n;
    else if (op.k === 'data') data = op.n >= 0 ? concat2(data, new Uint8Array(op.n)) : data.subarray(0, Math.max(0, data.length + op.n));
  }
  const h = enc.encode(text ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, h.length + lenDelta)), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}

const safetensors: FuzzTarget = {
  name: 'safetensors',
  what: 'SafetensorsFile.open on the file, then info/readFloat32/readInt32 of every tensor',
  arbitrary: () => mutated(safetensorsSeeds, fc.array(headerOp, { minLength: 1, maxLength: 4 }), applyHeaderOps, 1),
  run(input) {
    const f = SafetensorsFile.open(scratch('input.safetensors', input));
    try {
      for (const k of f.keys()) {
        const info = f.info(k);
        const floats = f.readFloat32(k);
        if (floats.length !== info.shape.reduce((a, b) => a * b, 1)) throw new Error(`${k}: read ${floats.length} values for shape ${info.shape}`);
        if (['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'].includes(info.dtype)) f.readInt32(k);
        f.location(k);
      }
    } finally {
      f.close();
    }
  },
};

// --- images -------------------------------------------------------------------------------------------

const imageFiles = (ext: string) => () => [
  ...fs.readdirSync(path.join(fixtures, 'images')).filter((f) => f.endsWith(ext)).map((f) => read(fixtures, 'images', f)),
  ...fs.readdirSync(path.join(fixtures, 'tiny', 'images')).filter((f) => f.endsWith(ext)).map((f) => read(fixtures, 'tiny', 'images', f)),
];

function decodeChecked(input: Uint8Array): void {
  const img = decodeImage(input, 'fuzz-input');
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`decodeImage returned ${img.data.length} bytes for ${img.width}x${img.height} RGB`);
  }
}

const png: FuzzTarget = {
  name: 'png',
  what: 'decodeImage on PNG bytes (src/image/png.ts via decode.ts)',
  arbitrary: () => mutated(imageFiles('.png'), pngOp, applyPngOp),
  run: decodeChecked,
};

const jpeg: FuzzTarget = {
  name: 'jpeg',
  what: 'decodeImage on JPEG bytes (src/image/jpeg.ts via decode.ts)',
  arbitrary: () => mutated(imageFiles('.jpg'), jpegOp, applyJpegOp),
  run: decodeChecked,
};

// --- tokenizer model ------------------------------------------------------------------------------------

const tokenizer: FuzzTarget = {
  name: 'tokenizer',
  what: 'MiniCPMTokenizer.fromBytes (parseSentencePieceModel + BPE tables), then encode and decode a short text',
  arbitrary: () => mutated(() => [read(fixtures, 'tokenizer', 'tiny_identity.model'), read(fixtures, 'tokenizer', 'tiny_dummy_prefix.model')],
    protoOp, applyProtoOp),
  run(input) {
    const tok = MiniCPMTokenizer.fromBytes(input, 'fuzz-input');
    const ids = tok.encode('Hello, 世界! <image><unk></image>\n  x\u00e9');
    tok.decode(ids);
    for (const id of ids) tok.idToPiece(id);
  },
};

// --- config.json --------------------------------------------------------------------------------------------

const CONFIG_KEYS = [...Object.keys(tinyConfigJson()), 'vision_mlp_hidden_dim', 'initializer_range', 'rope_scaling', 'attention_bias',
  'version', 'slice_mode', 'unknown_key'];

/** The tiny preset and the real model's sizes (SPEC §1), as JSON objects. */
function configSeeds(): Record<string, unknown>[] {
  const { vision_embed_dim: _a, vision_depth: _b, vision_num_heads: _c, vision_mlp_ratio: _d, vision_mlp_hidden_dim: _e, ...base } = tinyConfigJson();
  const real = { ...base, hidden_size: 2304, num_hidden_layers: 40, num_attention_heads: 36, num_key_value_heads: 36,
    intermediate_size: 5760, vocab_size: 122753, scale_emb: 12, dim_model_base: 256, scale_depth: 1.4, initializer_range: 0.1 };
  return [tinyConfigJson(), real];
}

type ConfigOp = { k: 'set' | 'del' | 'text' | 'bytes'; key: number; value: unknown; text: { k: 'dupKey' | 'bom' | 'lead' | 'floatInts' | 'trail'; n: number } };
const configOp: fc.Arbitrary<ConfigOp> = fc.record({
  k: fc.constantFrom('set' as const, 'set' as const, 'set' as const, 'set' as const, 'del' as const, 'text' as const),
  key: fc.nat(), value: jsonEdge, text: textOp,
});

const config: FuzzTarget = {
  name: 'config',
  what: 'loadConfig on a config.json file (parseConfig), then expectedTensors and parameter counts as `info` does',
  arbitrary: () => fc.record({ seed: fc.nat(), ops: fc.array(configOp, { minLength: 1, maxLength: 5 }), bytes: fc.option(byteOps(2), { freq: 8 }) })
    .map(({ seed, ops, bytes }) => {
      const seeds = configSeeds();
      const obj: Record<string, unknown> = { ...seeds[seed % seeds.length] };
      let text: string | undefined;
      for (const op of ops) {
        const key = CONFIG_KEYS[op.key % CONFIG_KEYS.length];
        if (op.k === 'set') obj[key] = op.value;
        else if (op.k === 'del') delete obj[key];
        else text = applyTextOp(text ?? JSON.stringify(obj), op.text);
      }
      const b = enc.encode(text ?? JSON.stringify(obj));
      return bytes ? applyByteOps(b, bytes) : b;
    }),
  run(input) {
    const cfg = loadConfig(scratch('config.json', input));
    let params = 0;
    for (const t of expectedTensors(cfg)) params += t.shape.reduce((a, b) => a * b, 1);
    if (!Number.isFinite(params)) throw new Error(`parameter count ${params}`);
  },
};

/**
 * A target that misbehaves on purpose, by its first byte (0 returns, 1 user error, 2 TypeError, 3 spins,
 * 4 allocates without end): the test of the campaign driver itself, never part of a campaign.
 */
const selftest: FuzzTarget = {
  name: 'selftest',
  what: 'the driver\'s own check: ok, user error, crash, hang, blow-up by the first input byte',
  arbitrary: () => fc.integer({ min: 0, max: 4 }).map((b) => Uint8Array.of(b)),
  run(input) {
    const held: Buffer[] = [];
    switch (input[0]) {
      case 1: throw new UserError('a user error');
      case 2: throw new TypeError('a bug');
      case 3: for (;;);
      case 4: for (;;) held.push(Buffer.alloc(32 * 2 ** 20, 1));
    }
  },
};

export const TARGETS: Record<string, FuzzTarget> = { safetensors, png, jpeg, tokenizer, config, selftest };
/** The targets a campaign runs by default: the project's parsers and decoders. */
export const CAMPAIGN_TARGETS = ['safetensors', 'png', 'jpeg', 'tokenizer', 'config'];

const arbitraries = new Map<string, fc.Arbitrary<Uint8Array>>();

/** Input `i` of a campaign with `seed`: the same bytes on every machine and every run. */
export function generateInput(t: FuzzTarget, seed: number, i: number): Uint8Array {
  let a = arbitraries.get(t.name);
  if (!a) arbitraries.set(t.name, (a = t.arbitrary()));
  const s = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) | 0;
  return fc.sample(a, { seed: s, numRuns: 1 })[0];
}
