// Mutations for the fuzz targets, as fast-check arbitraries: generic byte edits (AFL-style flips,
// interesting values, inserts, deletes, splices) and format-aware ones that keep a file structurally
// valid past its checksums so the decoder's deeper code runs (PNG chunks with their CRCs recomputed and
// IDAT re-deflated, JPEG segments with their lengths, safetensors headers as JSON, protobuf fields).
import zlib from 'node:zlib';
import fc from 'fast-check';

/** Values that sit on the edges of common integer widths and of this project's limits. */
export const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 14, 15, 16, 17, 31, 32, 63, 64, 100, 127, 128, 255, 256, 448, 449, 512, 1000, 1024,
  4096, 13000, 32767, 32768, 65535, 65536, 1 << 20, 178956970, 2147483647, 2147483648, 4294967295];
const interesting = fc.constantFrom(...INTERESTING);

type ByteOp =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'int'; at: number; width: 1 | 2 | 4; le: boolean; v: number }
  | { k: 'insert'; at: number; bytes: Uint8Array }
  | { k: 'delete'; at: number; len: number }
  | { k: 'copy'; from: number; len: number; to: number }
  | { k: 'truncate'; keep: number }
  | { k: 'append'; bytes: Uint8Array };

export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('set' as const), at: fc.nat(), v: fc.oneof(fc.constantFrom(0, 0xff, 0x7f, 0x80), fc.integer({ min: 0, max: 255 })) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('int' as const), at: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const), le: fc.boolean(), v: interesting }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('copy' as const), from: fc.nat(), len: fc.integer({ min: 1, max: 256 }), to: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
);

export function applyByteOp(b: Uint8Array, op: ByteOp): Uint8Array {
  const n = b.length;
  const pos = (x: number) => (n === 0 ? 0 : x % n);
  switch (op.k) {
    case 'flip': {
      if (!n) return b;
      const c = b.slice();
      c[pos(op.at)] ^= 1 << op.bit;
      return c;
    }
    case 'set': {
      if (!n) return b;
      const c = b.slice();
      c[pos(op.at)] = op.v;
      return c;
    }
    case 'int': {
      if (n < op.width) return b;
      const c = b.slice();
      const at = op.at % (n - op.width + 1);
      const dv = new DataView(c.buffer);
      if (op.width === 1) dv.setUint8(at, op.v & 0xff);
      else if (op.width === 2) dv.setUint16(at, op.v & 0xffff, op.le);
      else dv.setUint32(at, op.v >>> 0, op.le);
      return c;
    }
    case 'insert': {
      const at = n ? op.at % (n + 1) : 0;
      return concat(b.subarray(0, at), op.bytes, b.subarray(at));
    }
    case 'delete': {
      if (!n) return b;
      const at = pos(op.at);
      return concat(b.subarray(0, at), b.subarray(Math.min(n, at + op.len)));
    }
    case 'copy': {
      if (!n) return b;
      const from = pos(op.from), to = pos(op.to);
      return concat(b.subarray(0, to), b.subarray(from, Math.min(n, from + op.len)), b.subarray(to));
    }
    case 'truncate':
      return b.subarray(0, n ? op.keep % n : 0);
    case 'append':
      return concat(b, op.bytes);
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Up to `max` generic edits of a seed. */
export const byteOps = (max = 6) => fc.array(byteOp, { minLength: 1, maxLength: max });
export const applyByteOps = (b: Uint8Array, ops: ByteOp[]) => ops.reduce(applyByteOp, b);

// ---------------------------------------------------------------------------------------------------
// PNG: chunks with recomputed CRCs; IDAT inflated, edited and deflated again.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface PngChunk { type: string; data: Uint8Array }
const PNG_SIG = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

export function parsePng(b: Uint8Array): PngChunk[] {
  const chunks: PngChunk[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 8; at + 12 <= b.length;) {
    const len = dv.getUint32(at);
    if (at + 12 + len > b.length) break;
    chunks.push({ type: String.fromCharCode(...b.subarray(at + 4, at + 8)), data: b.slice(at + 8, at + 8 + len) });
    at += 12 + len;
  }
  return chunks;
}

export function buildPng(chunks: PngChunk[]): Uint8Array {
  return concat(PNG_SIG, ...chunks.map((c) => {
    const out = new Uint8Array(12 + c.data.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, c.data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = c.type.charCodeAt(i) & 0xff;
    out.set(c.data, 8);
    dv.setUint32(8 + c.data.length, crc32(out.subarray(4, 8 + c.data.length)));
    return out;
  }));
}

type PngOp =
  | { k: 'ihdr'; field: number; v: number }
  | { k: 'chunk'; index: number; ops: ByteOp[] }
  | { k: 'idat'; ops: ByteOp[] }
  | { k: 'drop'; index: number }
  | { k: 'dup'; index: number }
  | { k: 'add'; at: number; type: string; data: Uint8Array };

const IHDR_FIELD_VALUES = [INTERESTING, INTERESTING, [0, 1, 2, 3, 4, 5, 8, 16, 32], [0, 1, 2, 3, 4, 5, 6, 7], [0, 1], [0, 1], [0, 1, 2]];

export const pngOp: fc.Arbitrary<PngOp> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 6 }).chain((field) =>
    fc.record({ k: fc.constant('ihdr' as const), field: fc.constant(field), v: fc.constantFrom(...IHDR_FIELD_VALUES[field]) })) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('chunk' as const), index: fc.nat(), ops: byteOps(3) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('idat' as const), ops: byteOps(4) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drop' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('dup' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('add' as const), at: fc.nat(), type: fc.constantFrom('PLTE', 'tRNS', 'IDAT', 'IEND', 'gAMA', 'IHDR', 'zzZz'),
    data: fc.uint8Array({ maxLength: 800 }) }) },
);

export function applyPngOp(b: Uint8Array, op: PngOp): Uint8Array {
  const chunks = parsePng(b);
  if (!chunks.length) return b;
  const i = (x: number) => x % chunks.length;
  switch (op.k) {
    case 'ihdr': {
      const h = chunks.find((c) => c.type === 'IHDR');
      if (!h || h.data.length < 13) return b;
      const dv = new DataView(h.data.buffer, h.data.byteOffset, h.data.byteLength);
      if (op.field < 2) dv.setUint32(op.field * 4, op.v >>> 0);
      else h.data[6 + op.field] = op.v & 0xff;
      break;
    }
    case 'chunk': {
      const c = chunks[i(op.index)];
      c.data = applyByteOps(c.data, op.ops);
      break;
    }
    case 'idat': {
      const idats = chunks.filter((c) => c.type === 'IDAT');
      if (!idats.length) return b;
      let raw: Uint8Array;
      try {
        raw = zlib.inflateSync(concat(...idats.map((c) => c.data)));
      } catch {
        return b;
      }
      const data = zlib.deflateSync(applyByteOps(raw, op.ops));
      const first = chunks.indexOf(idats[0]);
      const rest = chunks.filter((c) => c.type !== 'IDAT');
      rest.splice(first, 0, { type: 'IDAT', data });
      return buildPng(rest);
    }
    case 'drop':
      chunks.splice(i(op.index), 1);
      break;
    case 'dup':
      chunks.splice(i(op.index), 0, { ...chunks[i(op.index)] });
      break;
    case 'add':
      chunks.splice(op.at % (chunks.length + 1), 0, { type: op.type, data: op.data });
      break;
  }
  return buildPng(chunks);
}

// ---------------------------------------------------------------------------------------------------
// JPEG: marker segments with their lengths; the entropy-coded data after SOS edited as bytes.

interface JpegSeg { marker: number; payload: Uint8Array; scan?: Uint8Array }

export function parseJpeg(b: Uint8Array): JpegSeg[] | undefined {
  if (b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  const segs: JpegSeg[] = [];
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return undefined;
    const marker = b[at + 1];
    if (marker === 0xd9) break;
    const len = (b[at + 2] << 8) | b[at + 3];
    if (len < 2 || at + 2 + len > b.length) return undefined;
    const seg: JpegSeg = { marker, payload: b.slice(at + 4, at + 2 + len) };
    at += 2 + len;
    if (marker === 0xda) { // entropy-coded data up to the next marker that is not RSTn or a stuffed 0xff00
      let end = at;
      while (end + 1 < b.length && !(b[end] === 0xff && b[end + 1] !== 0 && (b[end + 1] < 0xd0 || b[end + 1] > 0xd7))) end++;
      seg.scan = b.slice(at, end);
      at = end;
    }
    segs.push(seg);
  }
  return segs;
}

export function buildJpeg(segs: JpegSeg[]): Uint8Array {
  return concat(Uint8Array.from([0xff, 0xd8]), ...segs.flatMap((s) => {
    const len = s.payload.length + 2;
    const head = Uint8Array.from([0xff, s.marker, (len >> 8) & 0xff, len & 0xff]);
    return s.scan ? [head, s.payload, s.scan] : [head, s.payload];
  }), Uint8Array.from([0xff, 0xd9]));
}

type JpegOp =
  | { k: 'sof'; field: number; v: number }
  | { k: 'payload'; index: number; ops: ByteOp[] }
  | { k: 'scan'; ops: ByteOp[] }
  | { k: 'drop'; index: number }
  | { k: 'dup'; index: number }
  | { k: 'size'; h: number; w: number };

const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3]);

/**
 * JPEG edits. Rarely (about one input in 800) a frame header claims a huge image that is still under the
 * decoder's pixel limit (8192 to 13000 a side; 178,956,970 pixels is refused at once) on a file of a few kB:
 * issue 13's JPEG defect (3) was there; such an input now costs what its claimed image costs (seconds, and
 * memory near the RGB bytes when the data runs out late), or is refused at once.
 */
export const jpegOp: fc.Arbitrary<JpegOp> = fc.oneof(
  { weight: 300, arbitrary: fc.record({ k: fc.constant('sof' as const), field: fc.integer({ min: 0, max: 12 }),
    v: fc.oneof(interesting, fc.constantFrom(0x11, 0x12, 0x21, 0x22, 0x14, 0x41, 0x44, 0x00, 0x0f, 0xf0)) }) },
  { weight: 300, arbitrary: fc.record({ k: fc.constant('payload' as const), index: fc.nat(), ops: byteOps(3) }) },
  { weight: 300, arbitrary: fc.record({ k: fc.constant('scan' as const), ops: byteOps(4) }) },
  { weight: 100, arbitrary: fc.record({ k: fc.constant('drop' as const), index: fc.nat() }) },
  { weight: 100, arbitrary: fc.record({ k: fc.constant('dup' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('size' as const), h: fc.constantFrom(8192, 10000, 13000),
    w: fc.constantFrom(8192, 10000, 13000) }) },
);

export function applyJpegOp(b: Uint8Array, op: JpegOp): Uint8Array {
  const segs = parseJpeg(b);
  if (!segs?.length) return b;
  const i = (x: number) => x % segs.length;
  switch (op.k) {
    case 'sof': {
      // Frame header: precision(1) height(2) width(2) ncomp(1) then (id, HV, Tq) per component.
      const sof = segs.find((s) => SOF_MARKERS.has(s.marker));
      if (!sof || sof.payload.length < 6) return b;
      const p = sof.payload;
      if (op.field === 1 || op.field === 2) {
        const at = op.field === 1 ? 1 : 3;
        p[at] = (op.v >> 8) & 0xff;
        p[at + 1] = op.v & 0xff;
      } else if (op.field === 0) p[0] = op.v & 0xff;
      else if (op.field === 3) p[5] = op.v & 0xff;
      else {
        const at = 6 + (op.field - 4); // inside the component table
        if (at < p.length) p[at] = op.v & 0xff;
      }
      break;
    }
    case 'payload': {
      const s = segs[i(op.index)];
      s.payload = applyByteOps(s.payload, op.ops).subarray(0, 65533);
      break;
    }
    case 'scan': {
      const s = segs.find((x) => x.scan);
      if (!s) return b;
      s.scan = applyByteOps(s.scan!, op.ops);
      break;
    }
    case 'drop':
      segs.splice(i(op.index), 1);
      break;
    case 'dup':
      segs.splice(i(op.index), 0, { ...segs[i(op.index)] });
      break;
    case 'size': {
      const sof = segs.find((s) => SOF_MARKERS.has(s.marker));
      if (!sof || sof.payload.length < 5) return b;
      sof.payload.set([op.h >> 8, op.h & 0xff, op.w >> 8, op.w & 0xff], 1);
      break;
    }
  }
  return buildJpeg(segs);
}

// ---------------------------------------------------------------------------------------------------
// JSON documents (safetensors headers, config.json): values from the edges of every type.

export const jsonEdge: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: interesting },
  { weight: 2, arbitrary: fc.constantFrom(-1, -2147483648, 0.5, 1.5, 1e-300, 1e-13, 1e300, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -0) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, '', 'x', '2', 'F32', 'BF16', 'F16', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'Q4') },
  { weight: 1, arbitrary: fc.constantFrom([], {}, [0], [1, 2], [-1], [2147483648, 2]) },
  { weight: 1, arbitrary: fc.array(interesting, { maxLength: 5 }) },
);

/** A JSON text with extra laxities JSON.stringify never writes: repeated keys, BOM, leading whitespace, 2.0. */
export type TextOp = { k: 'dupKey' | 'bom' | 'lead' | 'floatInts' | 'trail'; n: number };
export const textOp: fc.Arbitrary<TextOp> = fc.record({ k: fc.constantFrom('dupKey' as const, 'bom' as const, 'lead' as const, 'floatInts' as const, 'trail' as const), n: fc.nat() });

export function applyTextOp(text: string, op: TextOp): string {
  switch (op.k) {
    case 'dupKey': { // repeat one `"key":value` member right after itself (top level or nested)
      const keys = [...text.matchAll(/"([^"\\]*)":/g)];
      if (!keys.length) return text;
      const m = keys[op.n % keys.length];
      return `${text.slice(0, m.index)}"${m[1]}":${JSON.stringify(op.n % 3 === 0 ? 'F16' : op.n % 3 === 1 ? [op.n % 9] : null)},${text.slice(m.index)}`;
    }
    case 'bom': return `\ufeff${text}`;
    case 'lead': return `${' \t\n\r'[op.n % 4].repeat(1 + (op.n % 5))}${text}`;
    case 'floatInts': return text.replace(/(\d)([,\]])/, op.n % 2 ? '$1.0$2' : '$1e0$2');
    case 'trail': return `${text}${' '.repeat(op.n % 9)}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Protobuf (SentencePiece ModelProto): a field tree; varints set to edge values, lengths and bytes edited.

interface PbField { no: number; wire: number; value: bigint | Uint8Array; children?: PbField[] }

function readVarint(b: Uint8Array, at: number): [bigint, number] | undefined {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (at + i >= b.length) return undefined;
    v |= BigInt(b[at + i] & 0x7f) << BigInt(7 * i);
    if (!(b[at + i] & 0x80)) return [v, at + i + 1];
  }
  return undefined;
}

function writeVarint(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const byte = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? byte | 0x80 : byte);
  } while (x);
  return Uint8Array.from(out);
}

/** Top-level fields, with the pieces (1), trainer (2) and normalizer (3) messages opened one level. */
export function parseProto(b: Uint8Array, depth = 0): PbField[] | undefined {
  const fields: PbField[] = [];
  for (let at = 0; at < b.length;) {
    const key = readVarint(b, at);
    if (!key) return undefined;
    at = key[1];
    const no = Number(key[0] >> 3n), wire = Number(key[0] & 7n);
    if (wire === 0) {
      const v = readVarint(b, at);
      if (!v) return undefined;
      fields.push({ no, wire, value: v[0] });
      at = v[1];
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (at + n > b.length) return undefined;
      fields.push({ no, wire, value: b.slice(at, at + n) });
      at += n;
    } else if (wire === 2) {
      const len = readVarint(b, at);
      if (!len || len[1] + Number(len[0]) > b.length) return undefined;
      const value = b.slice(len[1], len[1] + Number(len[0]));
      const children = depth === 0 && no <= 3 ? parseProto(value, 1) : undefined;
      fields.push({ no, wire, value, children });
      at = len[1] + Number(len[0]);
    } else return undefined;
  }
  return fields;
}

export function buildProto(fields: PbField[]): Uint8Array {
  return concat(...fields.flatMap((f) => {
    const key = writeVarint(BigInt((f.no << 3) | f.wire));
    if (f.wire === 0) return [key, writeVarint(f.value as bigint)];
    if (f.wire === 2) {
      const body = f.children ? buildProto(f.children) : (f.value as Uint8Array);
      return [key, writeVarint(BigInt(body.length)), body];
    }
    return [key, f.value as Uint8Array];
  }));
}

type ProtoOp =
  | { k: 'varint'; path: number[]; v: bigint }
  | { k: 'bytes'; path: number[]; ops: ByteOp[] }
  | { k: 'drop'; path: number[] }
  | { k: 'dup'; path: number[] }
  | { k: 'add'; parent: number; no: number; v: bigint };

const protoEdge = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 127n, 128n, 255n, 65535n, 2147483647n, 2147483648n, 4294967295n, -1n, -2n, 2n ** 63n - 1n),
  fc.bigInt({ min: -(2n ** 31n), max: 2n ** 32n }),
);
const path2 = fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => [a, b]);

export const protoOp: fc.Arbitrary<ProtoOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('varint' as const), path: path2, v: protoEdge }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('bytes' as const), path: path2, ops: byteOps(3) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drop' as const), path: path2 }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('dup' as const), path: path2 }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('add' as const), parent: fc.nat(), no: fc.integer({ min: 1, max: 60 }), v: protoEdge }) },
);

export function applyProtoOp(b: Uint8Array, op: ProtoOp): Uint8Array {
  const top = parseProto(b);
  if (!top?.length) return b;
  // A path picks a top-level field, then (if it has children) one of them, preferring the nested ones.
  const pick = (path: number[]): [PbField[], number] => {
    const t = top[path[0] % top.length];
    if (t.children?.length) return [t.children, path[1] % t.children.length];
    return [top, path[0] % top.length];
  };
  switch (op.k) {
    case 'varint': {
      const [list, i] = pick(op.path);
      list[i] = { no: list[i].no, wire: 0, value: op.v };
      break;
    }
    case 'bytes': {
      const [list, i] = pick(op.path);
      const f = list[i];
      if (f.wire === 2) list[i] = { no: f.no, wire: 2, value: applyByteOps(f.children ? buildProto(f.children) : (f.value as Uint8Array), op.ops) };
      break;
    }
    case 'drop': {
      const [list, i] = pick(op.path);
      list.splice(i, 1);
      break;
    }
    case 'dup': {
      const [list, i] = pick(op.path);
      list.splice(i, 0, list[i]);
      break;
    }
    case 'add': {
      const t = top[op.parent % top.length];
      (t.children ?? top).push({ no: op.no, wire: 0, value: op.v });
      break;
    }
  }
  return buildProto(top);
}
