// Parity with the committed fixtures on the bundled tiny model (weights/tiny, BF16): the PyTorch reference
// (reference/make_fixtures.py, checked against the original code's golden data by check_golden.py) ran
// four chat turns on it and stored every stage plus the greedy / beam / sampled ids. Runs from a clone
// alone (no ../shared), on the native and the pure-JS backend. Tolerances: src/parity/tolerances.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadImage, type RgbImage } from '../src/image/decode.ts';
import { preprocess } from '../src/image/preprocess.ts';
import { buildPrompt, chat, ChatSession, cleanOutput, encodePrompt, type ChatMessage } from '../src/model/chat.ts';
import { beamSearch, greedy, sample, sampleFromLogits } from '../src/model/generate.ts';
import { Hooks } from '../src/model/hooks.ts';
import { loadModel, loadTokenizer } from '../src/model/load.ts';
import type { MiniCPMV } from '../src/model/minicpmv.ts';
import { mulberry32 } from '../src/model/rng.ts';
import type { MiniCPMTokenizer } from '../src/tokenizer/tokenizer.ts';
import { convertCheckpoint } from '../src/weights/convert.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { expectClose } from './helpers/expect_close.ts';
import { fixturesDir, repoRoot } from './helpers/paths.ts';

const W = path.join(repoRoot, 'weights', 'tiny');
const F = path.join(fixturesDir, 'tiny');

interface CaseMeta {
  id: string; file: string; image: string; msgs: ChatMessage[]; stages: string;
  input_ids: number[]; image_bound: number[][];
  greedy_text: string; beam_text: string; sample_text: string;
}
interface Manifest {
  run: { new_tokens: number; beam: { num_beams: number; repetition_penalty: number };
    sample: { temperature: number; top_k: number; top_p: number; seed: number } };
  cases: CaseMeta[];
}
const manifest: Manifest = JSON.parse(fs.readFileSync(path.join(F, 'manifest.json'), 'utf8'));
const CASES = manifest.cases;
const FULL = CASES[0];
const MULTI_TURN = CASES.find((c) => c.msgs.length > 1)!;
const { new_tokens: N, beam: B, sample: S } = manifest.run;
const beamOpts = { maxNewTokens: N, eosId: 2, numBeams: B.num_beams, repetitionPenalty: B.repetition_penalty };
const sampleOpts = { maxNewTokens: N, eosId: 2, temperature: S.temperature, topK: S.top_k, topP: S.top_p, seed: S.seed };

/** Keys the stage comparison skips: ids are checked on their own, `logits.positions` indexes `logits`. */
const NOT_STAGES = new Set(['input_ids', 'image_bound', 'logits.positions', 'greedy.ids', 'greedy.topk_ids',
  'greedy.topk_logits', 'beam.ids', 'sample.ids']);
/** What the first case must hold (golden tiny-a's keys; blocks and layers for this config). */
const FULL_KEYS = ['pixel_values', 'vpm.patch_embed', 'vpm.pos_embed_resampled', 'vpm.blocks.0', 'vpm.blocks.1',
  'vpm.norm', 'resampler.attn', 'resampler.ln_post', 'resampler', 'inputs_embeds', 'llm.model.layers.0.self_attn',
  'llm.model.layers.0.mlp', 'llm.model.layers.0', 'llm.model.layers.1.self_attn', 'llm.model.layers.1.mlp',
  'llm.model.layers.1', 'llm.model.norm', 'logits'];

const openCase = (c: CaseMeta) => SafetensorsFile.open(path.join(F, c.file));
const ints = (f: SafetensorsFile, key: string) => Array.from(f.readInt32(key));

/** Image.open(..).convert('RGB') as Pillow decoded it (images.safetensors). */
function pilRgb(name: string): RgbImage {
  const f = SafetensorsFile.open(path.join(F, 'images', 'images.safetensors'));
  try {
    const [height, width] = f.info(`${name}.rgb_u8`).shape;
    return { width, height, data: f.readUint8(`${name}.rgb_u8`) };
  } finally {
    f.close();
  }
}

/** The model's input image: PIL's decode as stored by the reference (equal to ours, checked below). */
const caseImage = (c: CaseMeta): RgbImage => (c.image.endsWith('.jpg') ? pilRgb(c.image) : loadImage(path.join(F, 'images', c.image)));

let tok: MiniCPMTokenizer;
let f32Dir: string;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-fixtures-'));
beforeAll(() => {
  tok = loadTokenizer(W);
  f32Dir = path.join(tmp, 'tiny-f32');
  convertCheckpoint(W, f32Dir, { dtype: 'f32' });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('tiny fixtures: inputs (no model)', () => {
  it('the tokenizer reproduces tokenizer-cases.json (ids and decode)', () => {
    const { cases } = JSON.parse(fs.readFileSync(path.join(F, 'tokenizer-cases.json'), 'utf8')) as
      { cases: { text: string; ids: number[]; decoded: string }[] };
    expect(cases.length).toBeGreaterThan(10);
    for (const c of cases) {
      expect([c.text, tok.encode(c.text)]).toEqual([c.text, c.ids]);
      expect([c.text, tok.decode(c.ids)]).toEqual([c.text, c.decoded]);
    }
  });

  it.each(CASES.map((c) => [c.id, c] as const))('%s: chat prompt -> input_ids and image_bound exactly', (_, c) => {
    const p = encodePrompt(tok, buildPrompt(c.msgs, 64));
    const f = openCase(c);
    expect(p.ids).toEqual(ints(f, 'input_ids'));
    expect(p.ids).toEqual(c.input_ids);
    expect(p.bounds.map((b) => [b.start, b.end])).toEqual(c.image_bound);
    expect(p.bounds.flatMap((b) => [b.start, b.end])).toEqual(ints(f, 'image_bound'));
    f.close();
  });

  it('PNG and JPEG decoding equal Pillow convert("RGB") exactly', () => {
    for (const c of CASES) {
      const mine = loadImage(path.join(F, 'images', c.image));
      const pil = pilRgb(c.image);
      expect([c.image, mine.width, mine.height]).toEqual([c.image, pil.width, pil.height]);
      let maxDiff = 0;
      for (let i = 0; i < pil.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(mine.data[i] - pil.data[i]));
      expect(maxDiff, c.image).toBe(0);
    }
  });

  it('sampleFromLogits draws the reference\'s first sampled id from the stored logits', () => {
    // The same draw rule as reference/minicpmv_ref.py sample_step (manifest run.sample.draw), on the
    // reference's own logits: independent of this project's forward pass.
    for (const c of CASES) {
      const f = openCase(c);
      const [, P, V] = f.info('logits').shape;
      const last = f.readFloat32('logits').subarray((P - 1) * V, P * V);
      expect([c.id, sampleFromLogits(last, sampleOpts, mulberry32(S.seed))]).toEqual([c.id, ints(f, 'sample.ids')[0]]);
      f.close();
    }
  });
});

const backends = nativeAvailable().ok ? ['tensorflow', 'cpu'] : ['cpu'];

describe.each(backends)('tiny fixtures on %s', (backend) => {
  let model: MiniCPMV;
  beforeAll(async () => {
    await initBackend(backend);
    model = loadModel(W);
  });
  afterAll(() => model?.dispose());

  /**
   * Runs one case with every key of its file recorded. Also keeps the `inputs_embeds` tensor, so the
   * generation tests start from this pass instead of encoding the image again (owned by the caller).
   */
  function record(m: MiniCPMV, c: CaseMeta, f: SafetensorsFile) {
    const keys = new Set(f.keys());
    const got = new Map<string, { data: Float32Array | Int32Array; shape: number[] }>();
    let embeds: tf.Tensor3D | undefined;
    const hooks = new Hooks({
      select: (k) => keys.has(k) || k === 'inputs_embeds',
      onActivation: (k, t) => {
        if (k === 'inputs_embeds') embeds = tf.keep(t.clone()) as tf.Tensor3D;
        if (keys.has(k)) got.set(k, { data: t.dataSync() as Float32Array | Int32Array, shape: t.shape });
      },
    });
    const ids = ints(f, 'input_ids');
    const [start, end] = ints(f, 'image_bound');
    tf.dispose(m.run({ pixelValues: preprocess(caseImage(c)), inputIds: ids, imageBounds: [{ start, end }], hooks }));
    return { got, embeds: embeds! };
  }
  const runs = new Map<string, ReturnType<typeof record>>();
  const recorded = (c: CaseMeta, f: SafetensorsFile) => {
    if (!runs.has(c.id)) runs.set(c.id, record(model, c, f));
    return runs.get(c.id)!;
  };
  afterAll(() => runs.forEach((r) => r.embeds.dispose()));

  it.each(CASES.map((c) => [c.id, c] as const))('%s: every stored stage within its stage tolerance', (_, c) => {
    const f = openCase(c);
    const { got } = recorded(c, f);
    const checked: string[] = [];
    for (const key of f.keys()) {
      if (NOT_STAGES.has(key)) continue;
      const mine = got.get(key);
      expect(mine, `hook ${key} was not recorded`).toBeDefined();
      const info = f.info(key);
      let data = mine!.data, shape = mine!.shape;
      if (key === 'logits') { // stored at the last few positions only
        const V = shape[2];
        const pos = ints(f, 'logits.positions');
        data = Float32Array.from(pos.flatMap((p) => Array.from(mine!.data.subarray(p * V, (p + 1) * V))));
        shape = [1, pos.length, V];
      }
      expectClose(key, data, f.readFloat32(key), shape, info.shape);
      checked.push(key);
    }
    expect(ints(f, 'input_ids')).toEqual(Array.from(got.get('input_ids')!.data));
    const must = c === FULL ? FULL_KEYS : FULL_KEYS.filter((k) => !/^(pixel_values|vpm\.(patch_embed|pos_embed|blocks))/.test(k));
    for (const k of must) expect(checked).toContain(k);
    f.close();
  });

  it.each(CASES.map((c) => [c.id, c] as const))('%s: greedy, beam and sampled ids and texts exact; no tensor left behind', (_, c) => {
    const f = openCase(c);
    const { embeds } = recorded(c, f); // this project's inputs_embeds for the case
    const before = tf.memory().numTensors;
    const g = greedy(model.llm, embeds, { maxNewTokens: N, eosId: 2 });
    const b = beamSearch(model.llm, embeds, beamOpts);
    const s = sample(model.llm, embeds, sampleOpts);
    expect(tf.memory().numTensors).toBe(before);
    expect({ greedy: g, beam: b, sample: s }).toEqual(
      { greedy: ints(f, 'greedy.ids'), beam: ints(f, 'beam.ids'), sample: ints(f, 'sample.ids') });
    expect([cleanOutput(tok, g), cleanOutput(tok, b), cleanOutput(tok, s)]).toEqual([c.greedy_text, c.beam_text, c.sample_text]);
    f.close();
  });

  it(`chat() and a ChatSession on ${MULTI_TURN.id} give the fixture's ids`, () => {
    const c = MULTI_TURN;
    const f = openCase(c);
    const image = caseImage(c);
    const before = tf.memory().numTensors;
    const r = chat({ model, tokenizer: tok, image, msgs: c.msgs, mode: 'beam', maxNewTokens: N });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.prompt.ids).toEqual(c.input_ids);
    expect(r.tokens).toEqual(ints(f, 'beam.ids'));
    expect(r.answer).toBe(c.beam_text);
    expect(r.context).toEqual([...c.msgs, { role: 'assistant', content: c.beam_text }]);

    // A session encodes the image once and keeps the history; `ask` continues it.
    const session = new ChatSession(model, tok, image);
    const streamed: string[] = [];
    const g = session.reply(c.msgs, { mode: 'greedy', maxNewTokens: N, onText: (d) => streamed.push(d) });
    expect(g.tokens).toEqual(ints(f, 'greedy.ids'));
    expect(streamed.join('').trim()).toBe(c.greedy_text);
    const s = session.reply(c.msgs, { mode: 'sample', maxNewTokens: N, seed: S.seed });
    expect(s.tokens).toEqual(ints(f, 'sample.ids'));
    expect(s.timings.imageEncodeMs).toBe(0); // second turn reused the encoded image
    session.history.splice(0, session.history.length, ...c.msgs.slice(0, -1));
    const a = session.ask(c.msgs[c.msgs.length - 1].content, { maxNewTokens: N }); // original defaults: beam
    expect(a.tokens).toEqual(ints(f, 'beam.ids'));
    expect(session.history).toEqual([...c.msgs, { role: 'assistant', content: c.beam_text }]);
    expect(a.warnings).toEqual([]);
    // Past max_position_embeddings the answer is the same (the rotary table extends) and says so.
    const trained = model.cfg.llm.maxPositions;
    model.cfg.llm.maxPositions = c.input_ids.length + 1;
    try {
      const w = session.reply(c.msgs, { mode: 'greedy', maxNewTokens: N });
      expect(w.tokens).toEqual(ints(f, 'greedy.ids'));
      expect(w.warnings).toEqual([expect.stringMatching(
        new RegExp(`^the conversation reached ${c.input_ids.length + w.tokens.length} positions, past max_position_embeddings ${c.input_ids.length + 1}`))]);
    } finally {
      model.cfg.llm.maxPositions = trained;
    }
    session.dispose();
    expect(tf.memory().numTensors).toBe(before);
    f.close();
  });

  it('an F32 conversion of weights/tiny gives the same numbers as the BF16 checkpoint', () => {
    const m32 = loadModel(f32Dir);
    try {
      const f = openCase(FULL);
      const a = recorded(FULL, f).got;
      const b = record(m32, FULL, f);
      expect([...b.got.keys()].sort()).toEqual([...a.keys()].sort());
      // Same float32 weights (bf16 widens exactly), same kernels: bit-identical activations.
      for (const [k, v] of a) {
        const w = b.got.get(k)!.data;
        const at = v.data.findIndex((x, i) => !Object.is(x, w[i]));
        expect(at, `${k}: first differing element [${at}] ${v.data[at]} vs ${w[at]}`).toBe(-1);
      }
      expect(beamSearch(m32.llm, b.embeds, beamOpts)).toEqual(ints(f, 'beam.ids'));
      b.embeds.dispose();
      f.close();
    } finally {
      m32.dispose();
    }
  });
});
