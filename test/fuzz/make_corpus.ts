// Writes the hand-made part of the regression corpus (test/fuzz/corpus/TARGET/NAME): small reproducers of
// the defects that issue 13's campaign and this repository's fuzz runs found, one file each. Inputs found
// by `npm run fuzz` are copied next to them as they are. Run: npx tsx test/fuzz/make_corpus.ts
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { tinyConfigJson } from '../../src/config.ts';
import { CORPUS_DIR } from './campaign.ts';
import { applyJpegOp, applyPngOp, buildPng, concat, parsePng } from './mutate.ts';

const fixtures = path.resolve(CORPUS_DIR, '..', '..', 'fixtures');
const enc = new TextEncoder();

function put(target: string, name: string, bytes: Uint8Array | string): void {
  const dir = path.join(CORPUS_DIR, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), typeof bytes === 'string' ? enc.encode(bytes) : bytes);
}

/** A safetensors file from a header text and `data` bytes (length prefix = the header's byte length unless given). */
function st(header: string, data = 0, len?: bigint): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + data);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  out.set(h, 8);
  out.fill(0x3f, 8 + h.length);
  return out;
}

const entry = (dtype: string, shape: number[], begin: number, end: number) => JSON.stringify({ dtype, shape, data_offsets: [begin, end] });

// --- safetensors: the laxities of issue 13 (6) ---
put('safetensors', 'trailing-bytes.safetensors', st(`{"a":${entry('F32', [2], 0, 8)}}`, 12));
put('safetensors', 'trailing-bytes-no-tensor.safetensors', st('{"__metadata__":{"format":"pt"}}', 8));
put('safetensors', 'gap-between-tensors.safetensors', st(`{"a":${entry('F32', [2], 0, 8)},"b":${entry('F32', [2], 12, 20)}}`, 20));
put('safetensors', 'gap-before-first.safetensors', st(`{"a":${entry('F32', [2], 4, 12)}}`, 12));
put('safetensors', 'duplicate-key-f32-to-f16.safetensors',
  st(`{"llm.lm_head.weight":${entry('F32', [2], 0, 8)},"llm.lm_head.weight":${entry('F16', [4], 0, 8)}}`, 8));
put('safetensors', 'duplicate-field.safetensors', st('{"w":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 8));
put('safetensors', 'duplicate-metadata-key.safetensors', st('{"__metadata__":{"a":"1","a":"2"}}'));
for (const field of ['dtype', 'shape', 'data_offsets']) {
  const e: Record<string, unknown> = JSON.parse(entry('F32', [2], 0, 8));
  delete e[field];
  put('safetensors', `missing-${field}.safetensors`, st(JSON.stringify({ 'vpm.norm.weight': e }), 8));
}
put('safetensors', 'shape-written-2.0.safetensors', st('{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 8));
put('safetensors', 'header-bom.safetensors', st('\ufeff{}'));
put('safetensors', 'header-leading-whitespace.safetensors', st(`\t\n {"a":${entry('F32', [2], 0, 8)}}  `, 8)); // accepted
put('safetensors', 'deep-nesting.safetensors', st(`{"w":${'['.repeat(3000)}${']'.repeat(3000)}}`));
put('safetensors', 'header-length-2^63.safetensors', st('{}', 0, 2n ** 63n));
put('safetensors', 'shape-overflow.safetensors', st(`{"w":${entry('F32', [2 ** 40, 2 ** 40], 0, 8)}}`, 8));
put('safetensors', 'null-metadata-scalar.safetensors', st(`{"__metadata__":null,"s":${entry('F64', [], 0, 8)}}`, 8)); // accepted

// --- config.json: values that allocated before any check (issue 13 (2)) ---
const cfg = (o: Record<string, unknown>) => JSON.stringify(tinyConfigJson(o));
put('config', 'layers-2147483648.json', cfg({ num_hidden_layers: 2147483648 }));
put('config', 'layers-50000000.json', cfg({ num_hidden_layers: 50_000_000 }));
put('config', 'vision-depth-50000000.json', cfg({ vision_depth: 50_000_000 }));
for (const s of [2147483648, 10000, 5000, 0]) put('config', `image-size-${s}.json`, cfg({ image_size: s }));
put('config', 'rms-eps-1e30.json', cfg({ rms_norm_eps: 1e30 }));
put('config', 'rope-theta-0.5.json', cfg({ rope_theta: 0.5 }));
put('config', 'query-num-4096.json', cfg({ query_num: 4096 }));
put('config', 'query-num-2^40.json', cfg({ query_num: 2 ** 40 }));
put('config', 'vocab-2^40.json', cfg({ vocab_size: 2 ** 40 }));
put('config', 'heads-do-not-divide.json', cfg({ num_attention_heads: 3 }));
put('config', 'max-positions-2^60.json', cfg({ max_position_embeddings: 2 ** 60 }));
put('config', 'bom.json', `\ufeff${cfg({})}`);

// --- PNG: headers that claim huge images (issue 13 (3)); rows followed by extra data (7) ---
const rgb1 = new Uint8Array(fs.readFileSync(path.join(fixtures, 'images', 'rgb8_1x1.png')));
const claim = (w: number, h: number) => applyPngOp(applyPngOp(rgb1, { k: 'ihdr', field: 0, v: w }), { k: 'ihdr', field: 1, v: h });
put('png', 'claims-1x178956970.png', claim(1, 178956970));
put('png', 'claims-13000x13000.png', claim(13000, 13000));
const rgb8 = new Uint8Array(fs.readFileSync(path.join(fixtures, 'images', 'rgb8.png')));
const chunks = parsePng(rgb8);
const idat = chunks.filter((c) => c.type === 'IDAT');
const raw = zlib.inflateSync(concat(...idat.map((c) => c.data)));
const extra = zlib.deflateSync(concat(raw, new Uint8Array(4096).fill(7)));
put('png', 'extra-data-after-rows.png', buildPng([...chunks.filter((c) => c.type !== 'IDAT' && c.type !== 'IEND'),
  { type: 'IDAT', data: extra }, { type: 'IEND', data: new Uint8Array(0) }]));

// --- JPEG: small claims the decoder refuses before decoding, and a 1.2 kB file claiming 13000x13000 ---
const jpg = new Uint8Array(fs.readFileSync(path.join(fixtures, 'images', 'pil_420.jpg')));
put('jpeg', 'sof-zero-width.jpg', applyJpegOp(jpg, { k: 'sof', field: 2, v: 0 }));
put('jpeg', 'sof-zero-components.jpg', applyJpegOp(jpg, { k: 'sof', field: 3, v: 0 }));
put('jpeg', 'scan-truncated.jpg', applyJpegOp(jpg, { k: 'scan', ops: [{ k: 'truncate', keep: 40 }] }));
// Issue 13 (3): this 1.2 kB file once made decodeImage reach 2.5 GB over two minutes before it was refused.
// It ends with EOI, so Pillow decodes it (a grey 13000x13000 image); so does decodeImage now, near the RGB bytes.
put('jpeg', 'claims-13000x13000.jpg', applyJpegOp(applyJpegOp(jpg, { k: 'sof', field: 1, v: 13000 }), { k: 'sof', field: 2, v: 13000 }));

// --- tokenizer model ---
const model = new Uint8Array(fs.readFileSync(path.join(fixtures, 'tokenizer', 'tiny_identity.model')));
put('tokenizer', 'truncated-half.model', model.subarray(0, model.length >> 1));
put('tokenizer', 'length-past-end.model', concat(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f), model.subarray(0, 16)));
