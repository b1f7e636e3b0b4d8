// Weights resident in their checkpoint dtype (issue 16): the bundled BF16 model loads with its weight
// matrices packed (2 bytes each) where the native ops run, and gives what the fully widened float32 path
// gives on every hook; the KV cache preallocates (reserving max_position_embeddings where mapped), grows in chunks, reorders beams without copying and
// leaves nothing behind; beam search reports its progress; bad weight-dtype options fail with one line.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { BACKENDS, initBackend, nativeAvailable } from '../src/backend/index.ts';
import { loadImage } from '../src/image/decode.ts';
import { preprocess } from '../src/image/preprocess.ts';
import { buildPrompt, encodePrompt } from '../src/model/chat.ts';
import { beamSearch, greedy } from '../src/model/generate.ts';
import { Hooks, hookNames } from '../src/model/hooks.ts';
import { KV_CHUNK } from '../src/model/minicpm_llm.ts';
import { loadModel, loadTokenizer } from '../src/model/load.ts';
import { fileBackedBytes } from '../src/backend/native_ops.ts';
import { openCheckpoint } from '../src/weights/checkpoint.ts';
import { WeightsError } from '../src/weights/loader.ts';
import { writeRandomCheckpoint } from '../src/weights/random.ts';
import { expectClose } from './helpers/expect_close.ts';
import { firstDiff } from './helpers/tensors.ts';
import { repoRoot } from './helpers/paths.ts';

const W = path.join(repoRoot, 'weights', 'tiny');
const backends = BACKENDS.filter((b) => b !== 'tensorflow' || nativeAvailable().ok);
const native = nativeAvailable().ok && nativeAvailable().nativeOps?.ok === true;

/** Every hook of one chat prompt's forward pass, copied out. */
function allHooks(weightsDtype: 'auto' | 'f32') {
  const model = loadModel(W, { weightsDtype });
  const tok = loadTokenizer(W);
  const p = encodePrompt(tok, buildPrompt([{ role: 'user', content: 'What is in the image?' }], model.cfg.resampler.numQueries));
  const pixels = preprocess(loadImage(path.join(repoRoot, 'examples', 'red_ball.png')), model.cfg.vision.imageSize);
  const seen = new Map<string, { data: Float32Array | Int32Array; shape: number[] }>();
  const hooks = new Hooks({ select: () => true, onActivation: (k, v) => seen.set(k, { data: v.dataSync().slice() as Float32Array, shape: v.shape }) });
  tf.dispose(model.run({ pixelValues: pixels, inputIds: p.ids, imageBounds: p.bounds, hooks }));
  const embeds = tf.tidy(() => model.buildInputsEmbeds(p.ids, p.bounds, [model.encodeImage(pixels)]));
  const ids = { greedy: greedy(model.llm, embeds, { maxNewTokens: 6, eosId: 2 }),
    beam: beamSearch(model.llm, embeds, { maxNewTokens: 6, eosId: 2, numBeams: 3, repetitionPenalty: 1.2 }) };
  embeds.dispose();
  const resident = model.residentWeights();
  const names = hookNames(model.cfg);
  model.dispose();
  return { seen, ids, resident, names };
}

describe.each(backends)('weights resident in their checkpoint dtype (%s)', (backend) => {
  it('auto keeps bf16 matrices packed where the native ops run, float32 elsewhere; every hook agrees with the f32 path within 1e-6', async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const auto = allHooks('auto'), f32 = allHooks('f32');
    expect(tf.memory().numTensors).toBe(before);
    const packs = backend === 'tensorflow' && native;
    expect(auto.resident.dtype).toBe(packs ? 'bf16' : 'f32');
    expect(f32.resident.dtype).toBe('f32');
    if (packs) expect(auto.resident.residentBytes).toBeLessThan(0.6 * f32.resident.residentBytes);
    for (const key of auto.names) {
      const a = auto.seen.get(key), e = f32.seen.get(key);
      expect(a, key).toBeDefined();
      expectClose(key, a!.data, e!.data, a!.shape, e!.shape, { rtol: 1e-6, atol: 1e-7 });
    }
    expect(auto.ids).toEqual(f32.ids);
  });
});

describe.each(backends)('the KV cache (%s)', (backend) => {
  it('prefills, grows in chunks, expands to beams, reorders without tensor ops and leaves no tensor behind', async () => {
    await initBackend(backend);
    const model = loadModel(W);
    const llm = model.llm, cfg = model.cfg.llm;
    const before = tf.memory().numTensors;
    const cache = llm.newCache({ slots: 3, reserve: 0 }); // no reservation: the chunked growth
    const prompt = llm.embed([1, 5, 9, 11, 13]);
    tf.dispose(llm.forward(prompt, { cache, logits: 'last' }));
    expect(cache.length).toBe(5);
    const perPosition = 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * 4; // keys and values, float32
    expect(cache.spanBytes()).toBe(3 * perPosition * KV_CHUNK);
    expect(cache.bytes()).toBe(5 * perPosition);
    cache.expand(3);
    const tensorsBefore = tf.memory().numTensors;
    cache.select([0, 0, 1]); // a beam reorder touches no tensor
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    // Steps past the first allocation (the first multiple of the chunk above the prompt) grow every layer's cache once.
    const first = KV_CHUNK;
    const steps = first - 5 + 1;
    for (let s = 0; s < steps; s++) {
      const x = tf.tidy(() => llm.embed([20 + s, 21 + s, 22 + s]).reshape([3, 1, -1]) as tf.Tensor3D);
      tf.dispose([x, llm.forward(x, { cache, logits: 'last' })]);
      cache.select([2, 0, 1]);
    }
    expect(cache.length).toBe(5 + steps);
    expect(cache.spanBytes()).toBe(3 * perPosition * (first + KV_CHUNK));
    expect(cache.bytes()).toBe((5 + steps + 2 * steps) * perPosition); // slot 0 the prompt and its steps, slots 1-2 their steps
    expect(tf.memory().numTensors).toBe(before + 1 + 2 * cfg.numLayers); // the prompt and the caches
    cache.dispose();
    prompt.dispose();
    expect(cache.bytes()).toBe(0);
    expect(cache.spanBytes()).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => cache.select([0, 4, 1])).toThrow(/select needs/);
    expect(() => llm.newCache({ reserve: -1 })).toThrow(/^KV cache: reserve must be an integer in \[0, 16384\], got -1$/);
    expect(() => llm.newCache({ reserve: 1.5 })).toThrow(/reserve must be an integer/);
    model.dispose();
  });

  it('reserves max_position_embeddings up front where the memory is mapped: a long generation never grows it', async () => {
    await initBackend(backend);
    const model = loadModel(W);
    const llm = model.llm, cfg = model.cfg.llm;
    const before = tf.memory().numTensors;
    const mapped = backend === 'tensorflow' && native;
    const caches = [llm.newCache({ slots: 2 }), llm.newCache({ slots: 2, reserve: 0 })];
    const prompt = llm.embed([1, 5, 9, 11, 13]);
    const rows: Float32Array[][] = [[], []];
    caches.forEach((cache, i) => {
      const y = llm.forward(prompt, { cache, logits: 'last' });
      rows[i].push(y.dataSync() as Float32Array);
      y.dispose();
      cache.expand(2);
    });
    const room = Math.ceil(cfg.maxPositions / KV_CHUNK) * KV_CHUNK;
    expect(caches[0].room).toBe(mapped ? room : KV_CHUNK);
    const k0 = caches[0].k[0];
    for (let s = 0; s < KV_CHUNK; s++) { // past the first chunk
      caches.forEach((cache, i) => {
        const x = tf.tidy(() => llm.embed([20 + s, 30 + s]).reshape([2, 1, -1]) as tf.Tensor3D);
        const y = llm.forward(x, { cache, logits: 'last' });
        if (s % 37 === 0) rows[i].push(y.dataSync() as Float32Array);
        tf.dispose([x, y]);
        cache.select([1, 0]);
      });
    }
    expect(caches[0].length).toBe(5 + KV_CHUNK);
    if (mapped) expect(caches[0].k[0]).toBe(k0); // the same tensor: written in place, never copied
    expect(caches[0].room).toBe(mapped ? room : 2 * KV_CHUNK);
    expect(caches[1].room).toBe(2 * KV_CHUNK);
    expect(caches[0].bytes()).toBe(caches[1].bytes());
    // The reservation changes where entries live, not what is computed.
    rows[0].forEach((r, j) => expect(firstDiff(r, rows[1][j]), `logits ${j}`).toBe(-1));
    for (const c of caches) c.dispose();
    prompt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('a beam reorder is the same as running the reordered beams from scratch', async () => {
    await initBackend(backend);
    const model = loadModel(W);
    const llm = model.llm;
    const ids = [1, 7, 3, 9];
    // Beams diverge at positions 4 and 5, then beam 0 continues beam 1's history.
    const cache = llm.newCache({ slots: 2 });
    tf.dispose(llm.forward(llm.embed(ids), { cache, logits: 'last' }));
    cache.expand(2);
    const step = (toks: number[]) => tf.tidy(() => llm.forward(llm.embed(toks).reshape([2, 1, -1]) as tf.Tensor3D, { cache, logits: 'last' }));
    tf.dispose(step([40, 50]));
    tf.dispose(step([41, 51]));
    cache.select([1, 1]);
    const got = step([60, 61]);
    for (const [b, tail] of [[0, [50, 51, 60]], [1, [50, 51, 61]]] as const) {
      const full = tf.tidy(() => llm.forward(llm.embed([...ids, ...tail]), { logits: 'last' }));
      const row = got.slice([b, 0, 0], [1, 1, -1]);
      expectClose(`beam ${b}`, row.dataSync() as Float32Array, full.dataSync() as Float32Array, row.shape, full.shape, { rtol: 1e-5, atol: 1e-5 });
      tf.dispose([full, row]);
    }
    tf.dispose(got);
    cache.dispose();
    model.dispose();
  });
});

describe('beam search progress', () => {
  it('reports every step with the best running beam', async () => {
    await initBackend(backends[0]);
    const model = loadModel(W);
    const embeds = model.llm.embed([1, 5, 9, 11]);
    const steps: [number, number[]][] = [];
    const out = beamSearch(model.llm, embeds, { maxNewTokens: 5, eosId: -1, numBeams: 3, repetitionPenalty: 1.2,
      onStep: (s) => {
        if (s.kind !== 'beam') return;
        const best = s.candidates.find((c) => c.fate === 'continues'); // candidates come best first
        steps.push([s.step, best ? [...s.beams[best.beam], best.token] : []]);
      } });
    expect(steps.map(([s]) => s)).toEqual([1, 2, 3, 4, 5]);
    steps.forEach(([s, best]) => expect(best.length).toBe(s));
    expect(out).toEqual(steps[4][1]); // no EOS: the best running beam at the last step is the answer
    embeds.dispose();
    model.dispose();
  });
});

describe('bad weight-dtype options fail with one line', () => {
  it('the library refuses an unknown weightsDtype', () => {
    expect(() => loadModel(W, { weightsDtype: 'bf16' as 'auto' })).toThrow(WeightsError);
    expect(() => loadModel(W, { weightsDtype: 'bf16' as 'auto' })).toThrow(/^weights dtype must be one of auto, f32, got "bf16"$/);
  });

  it('chat, trace and info refuse an unknown --weights-dtype with exit 2 and one line', () => {
    for (const cmd of [['chat', '--image', 'examples/red_ball.png', '--prompt', 'hi'], ['trace', '--image', 'examples/red_ball.png', '--prompt', 'hi', '--out', '/tmp/x.safetensors'], ['info']]) {
      let status = 0, stderr = '';
      try {
        execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'minicpmv.js'), ...cmd, '--weights-dtype', 'fp8'], { cwd: repoRoot, stdio: 'pipe' });
      } catch (e) {
        status = (e as { status: number }).status;
        stderr = String((e as { stderr: Buffer }).stderr);
      }
      expect(status, cmd[0]).toBe(2);
      expect(stderr.trim().split('\n'), cmd[0]).toEqual([`minicpmv ${cmd[0]}: --weights-dtype must be one of auto, f32; got "fp8"`]);
    }
  });
});

describe.skipIf(!native)('weights used in place in the checkpoint\'s pages', () => {
  it('a model whose matrices reach MiB sizes maps them from its aligned file; logits and ids equal a model that read them', async (ctx) => {
    await initBackend('tensorflow');
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mapped-model-'));
    onTestFinished(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const cfg = JSON.parse(fs.readFileSync(path.join(W, 'config.json'), 'utf8'));
    // lm_head and embed_tokens 8 MiB of BF16, each MLP matrix 2 MiB, q/k/v/o 0.5 MiB (under the 1 MiB threshold: read).
    Object.assign(cfg, { hidden_size: 512, intermediate_size: 2048, vocab_size: 8192, num_attention_heads: 4, num_key_value_heads: 4 });
    const cfgFile = path.join(tmp, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const dir = path.join(tmp, 'ckpt');
    writeRandomCheckpoint(cfgFile, dir, { dtype: 'bf16', seed: 5 });
    const ids = [1, 77, 1234, 8000, 5, 99, 4096, 3, 2047, 650, 18, 7000];
    const run = (map: boolean) => {
      if (!map) process.env.MINICPMV_MAP_WEIGHTS = '0';
      try {
        const before = tf.memory().numTensors;
        const model = loadModel(dir);
        const logits = tf.tidy(() => model.run({ inputIds: ids }).dataSync().slice());
        const embeds = model.buildInputsEmbeds(ids, [], []);
        const out = greedy(model.llm, embeds, { maxNewTokens: 5, eosId: 2 });
        embeds.dispose();
        const resident = model.residentWeights();
        model.dispose();
        expect(tf.memory().numTensors).toBe(before);
        return { logits, out, resident };
      } finally {
        delete process.env.MINICPMV_MAP_WEIGHTS;
      }
    };
    const mapped = run(true), read = run(false);
    expect(read.resident.fileBackedBytes).toBe(0);
    expect(mapped.resident.residentBytes).toBe(read.resident.residentBytes);
    if (mapped.resident.fileBackedBytes === 0) {
      ctx.skip(`${os.tmpdir()}'s page cache does not map as huge pages here: the model read its weights into memory of its own`);
    }
    // Every weight matrix of 1 MiB or more: the two 8 MiB tables, 2 layers x 3 MLP matrices of 2 MiB, the
    // resampler's 1.5 MiB in_proj_weight.
    const ckpt = openCheckpoint(dir);
    const big = ckpt.keys().map((k) => ckpt.info(k)).filter((t) => t.shape.length === 2 && 2 * t.shape[0] * t.shape[1] >= 2 ** 20);
    expect(big.length).toBe(9);
    expect(mapped.resident.fileBackedBytes).toBe(big.reduce((s, t) => s + 2 * t.shape[0] * t.shape[1], 0));
    ckpt.close();
    expect(fileBackedBytes()).toBe(0);
    expect(firstDiff(mapped.logits, read.logits), 'first logit that differs').toBe(-1);
    expect(mapped.out).toEqual(read.out);
  });
});
