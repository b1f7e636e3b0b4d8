// `minicpmv inspect` without a browser, on the bundled tiny model: the attention hook holds the
// probabilities that weight v, the logit lens's last layer is the model's own distribution, the decoding
// report agrees with the decoder, the divergence overlay finds a perturbed layer first, the server serves
// only its four files, and bad input is one line with exit code 2. (test/inspect_browser.test.ts drives
// the page in Chromium.)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeAvailable } from '../src/backend/index.ts';
import { main } from '../src/cli/main.ts';
import type { CommandIO } from '../src/cli/command.ts';
import { loadImage } from '../src/image/decode.ts';
import { preprocess } from '../src/image/preprocess.ts';
import { collectInspection, type InspectData, type InspectDecode } from '../src/inspect/collect.ts';
import { DumpComparer } from '../src/inspect/divergence.ts';
import { staticPage } from '../src/inspect/page.ts';
import { startServer } from '../src/inspect/server.ts';
import { hookShapes } from '../src/inspect/shapes.ts';
import { buildPrompt, encodePrompt } from '../src/model/chat.ts';
import { hookNames } from '../src/model/hooks.ts';
import { loadModel, loadTokenizer } from '../src/model/load.ts';
import type { MiniCPMV } from '../src/model/minicpmv.ts';
import { tensorStats } from '../src/parity/trace.ts';
import { toleranceFor } from '../src/parity/tolerances.ts';
import type { MiniCPMTokenizer } from '../src/tokenizer/tokenizer.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/weights/safetensors_writer.ts';
import { expectClose } from './helpers/expect_close.ts';
import { repoRoot } from './helpers/paths.ts';
import { recordActivations } from './helpers/activations.ts';

const W = path.join(repoRoot, 'weights', 'tiny');
const IMAGE = path.join(repoRoot, 'examples', 'red_ball.png');
const PROMPT = 'What is in the image?';
const msgs = [{ role: 'user' as const, content: PROMPT }];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-inspect-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const decode = (mode: InspectDecode['mode'], maxNewTokens = 10): InspectDecode => ({
  mode, maxNewTokens, numBeams: 3, repetitionPenalty: mode === 'beam' ? 1.2 : 1, temperature: 0.6, topK: 100, topP: 0.8, seed: 3,
});

function capture(): CommandIO & { lines: string[] } {
  const lines: string[] = [];
  return { out: (s) => lines.push(s), err: (s) => lines.push(s), isTTY: false, lines };
}
async function cli(...argv: string[]) {
  const io = capture();
  const code = await main(argv, io);
  return { code, lines: io.lines.flatMap((l) => l.split('\n')).filter(Boolean) };
}

/** softmax of one logits row, float64. */
function softmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  const e = Float64Array.from(row, (v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

let model: MiniCPMV;
let tok: MiniCPMTokenizer;
const image = loadImage(IMAGE);
beforeAll(async () => {
  await initBackend();
  model = loadModel(W);
  tok = loadTokenizer(W);
});
afterAll(() => model?.dispose());

describe('hook shapes', () => {
  it('hookShapes gives every hook the shape a run records', () => {
    const ids = encodePrompt(tok, buildPrompt(msgs, 64));
    const cache = recordActivations(model, { pixelValues: preprocess(image), inputIds: ids.ids, imageBounds: ids.bounds });
    const shapes = hookShapes(model.cfg, ids.ids.length);
    expect([...cache.keys()]).toEqual(hookNames(model.cfg));
    for (const [k, v] of cache) expect([k, v.shape]).toEqual([k, shapes.get(k)]);
  });
});

describe.each(nativeAvailable().ok ? ['tensorflow', 'cpu'] : ['cpu'])('resampler.attn.weights on %s', (backend) => {
  it('rows are probabilities that sum to 1, and they are the weights of v: P·V through out_proj gives resampler.attn', async () => {
    await initBackend(backend);
    try {
      const p = encodePrompt(tok, buildPrompt(msgs, 64));
      const c = recordActivations(model, { pixelValues: preprocess(image), inputIds: p.ids, imageBounds: p.bounds}, (k) => k.startsWith('resampler') );
      const P = c.get('resampler.attn.weights')!, kv = c.get('resampler.ln_kv')!;
      const [, H, Q, N] = P.shape, D = model.cfg.resampler.embedDim, d = D / H;
      expect([H, Q, N]).toEqual([model.cfg.resampler.numHeads, 64, 1024]);
      const sums = new Float32Array(H * Q);
      for (let r = 0; r < H * Q; r++) for (let k = 0; k < N; k++) sums[r] += P.data[r * N + k];
      expect(P.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      expectClose('resampler.attn.weights row sums', sums, new Float32Array(H * Q).fill(1), [H, Q], [H, Q], toleranceFor('resampler.attn.weights'));
      // Independent recomputation in float64 from ln_kv and the checkpoint's in_proj / out_proj.
      const values = (key: string) => { const t = model.params.float32(key); const v = t.dataSync(); t.dispose(); return v; };
      const w = values('resampler.attn.in_proj_weight'), b = values('resampler.attn.in_proj_bias');
      const wo = values('resampler.attn.out_proj.weight'), bo = values('resampler.attn.out_proj.bias');
      const V = new Float64Array(N * D); // V = ln_kv W_vᵀ + b_v (rows 2D..3D of in_proj)
      for (let k = 0; k < N; k++) for (let j = 0; j < D; j++) {
        let acc = b[2 * D + j];
        for (let i = 0; i < D; i++) acc += kv.data[k * D + i] * w[(2 * D + j) * D + i];
        V[k * D + j] = acc;
      }
      const o = new Float64Array(Q * D);
      for (let hh = 0; hh < H; hh++) for (let q = 0; q < Q; q++) for (let k = 0; k < N; k++) {
        const pr = P.data[(hh * Q + q) * N + k];
        for (let j = 0; j < d; j++) o[q * D + hh * d + j] += pr * V[k * D + hh * d + j];
      }
      const out = new Float32Array(Q * D);
      for (let q = 0; q < Q; q++) for (let j = 0; j < D; j++) {
        let acc = bo[j];
        for (let i = 0; i < D; i++) acc += o[q * D + i] * wo[j * D + i];
        out[q * D + j] = acc;
      }
      const attn = c.get('resampler.attn')!;
      expectClose('resampler.attn from P·V', out, attn.data as Float32Array, [Q, 1, D], attn.shape);
    } finally {
      await initBackend();
    }
  });
});

describe('collectInspection', () => {
  let greedyRun: InspectData;
  beforeAll(() => {
    collectInspection(model, tok, { msgs, image, decode: decode('greedy', 2) }); // warm-up: the model's position caches fill once
    const before = tf.memory().numTensors;
    greedyRun = collectInspection(model, tok, { msgs, image, decode: decode('greedy', 70), lensPositions: 6 }); // 70: two lens passes (64 positions each)
    expect(tf.memory().numTensors, 'tensors left behind').toBe(before);
  });

  it('the logit lens\'s last layer is the model\'s own distribution at every column', () => {
    const d = greedyRun;
    const p = encodePrompt(tok, buildPrompt(msgs, 64));
    // The model's logits over prompt + generated tokens, one teacher-forced pass.
    const logits = model.run({ pixelValues: preprocess(image), inputIds: [...p.ids, ...d.tokens], imageBounds: p.bounds });
    const V = logits.shape[2], all = logits.dataSync() as Float32Array;
    logits.dispose();
    const last = d.lens.cells[d.lens.cells.length - 1];
    expect(d.lens.rows).toEqual(['inputs_embeds', 'llm.model.layers.0', 'llm.model.layers.1']);
    expect(d.lens.columns.map((c) => c.pos)).toEqual(Array.from({ length: 6 + d.tokens.length }, (_, i) => p.ids.length - 6 + i));
    const tol = toleranceFor('logits');
    d.lens.columns.forEach((c, j) => {
      const probs = softmax(all.subarray(c.pos * V, (c.pos + 1) * V));
      const sorted = Array.from(probs).sort((a, b) => b - a);
      const cell = last[j];
      // rank by rank: the lens's r-th token has the model's r-th probability, and the lens says so
      cell.ids.forEach((id, r) => {
        expect(Math.abs(probs[id] - sorted[r]), `column ${j} rank ${r}`).toBeLessThanOrEqual(tol.atol + tol.rtol * sorted[r]);
        expect(Math.abs(cell.probs[r] - probs[id]), `column ${j} rank ${r}`).toBeLessThanOrEqual(tol.atol + tol.rtol * probs[id]);
      });
      if (c.nextToken !== null) expect(Math.abs(cell.next! - probs[c.nextToken])).toBeLessThanOrEqual(tol.atol + tol.rtol * probs[c.nextToken]);
      else expect(cell.next).toBeNull();
    });
  });

  it('greedy: each step chose the lens\'s last-layer top-1, with the same probability; columns name the right tokens', () => {
    const d = greedyRun, cols = d.lens.columns, last = d.lens.cells[d.lens.cells.length - 1];
    const firstGen = cols.findIndex((c) => c.kind === 'generated');
    expect(cols[firstGen - 1].token).toBe(d.prompt.ids[d.prompt.ids.length - 1]);
    expect(cols.slice(firstGen).map((c) => c.token)).toEqual(d.tokens);
    expect(d.steps).toHaveLength(d.tokens.length);
    d.steps.forEach((s, i) => {
      if (s.kind !== 'token') throw new Error('greedy steps are token steps');
      expect(s.id).toBe(d.tokens[i]);
      expect(s.candidates[0].id).toBe(s.id); // greedy: the argmax
      expect(last[firstGen - 1 + i].ids[0]).toBe(s.id);
      expect(Math.abs(s.candidates[0].prob - last[firstGen - 1 + i].probs[0])).toBeLessThanOrEqual(1e-3 + 1e-4 * s.candidates[0].prob);
      expect(s.candidates.map((c) => c.prob)).toEqual([...s.candidates.map((c) => c.prob)].sort((a, b) => b - a));
    });
    expect(d.answer).toBe(tok.decode(d.tokens.filter((t) => t !== tok.eosId)).trim());
  });

  it('statistics of every hook, in model order, equal those of the activations', () => {
    const d = greedyRun;
    expect(d.hooks).toEqual(hookNames(model.cfg));
    expect(d.stats.map((s) => s.key)).toEqual(hookNames(model.cfg).filter((k) => k !== 'input_ids'));
    const p = encodePrompt(tok, buildPrompt(msgs, 64));
    const c = recordActivations(model, { pixelValues: preprocess(image), inputIds: p.ids, imageBounds: p.bounds}, (k) => ['vpm.norm', 'llm.model.layers.1.mlp', 'logits'].includes(k) );
    for (const [k, v] of c) {
      const want = tensorStats(v.data), got = d.stats.find((s) => s.key === k)!;
      expect(got.shape).toEqual(v.shape);
      for (const f of ['mean', 'std', 'absMax'] as const) expect(Math.abs(got[f] - want[f]), `${k}.${f}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want[f]));
      expect(got.nan).toBe(0);
    }
    // the attention the page draws is the hook's tensor
    const a = Buffer.from(d.attention.f32Base64, 'base64');
    expect(a.length).toBe(4 * d.attention.heads * d.attention.queries * d.attention.keys);
    expect(d.attention).toMatchObject({ heads: 1, queries: 64, grid: 32, keys: 1024 });
  });

  it('beam search: the report rebuilds the returned answer; 2·beams candidates a step, beams continuing ones', () => {
    const d = collectInspection(model, tok, { msgs, image, decode: decode('beam', 10) });
    let beams: number[][] = [[]];
    const hyps: number[][] = [];
    for (const s of d.steps) {
      if (s.kind !== 'beam') throw new Error('beam steps expected');
      expect(s.candidates).toHaveLength(6);
      const cont = s.candidates.filter((c) => c.fate === 'continues');
      expect(cont).toHaveLength(3);
      expect(s.parents).toEqual(cont.map((c) => c.beam));
      expect(s.candidates.map((c) => c.score)).toEqual([...s.candidates.map((c) => c.score)].sort((a, b) => b - a));
      s.candidates.filter((c) => c.fate === 'finished').forEach((c) => { expect(c.token).toBe(tok.eosId); hyps.push(beams[c.beam]); });
      beams = cont.map((c) => [...beams[c.beam], c.token]);
    }
    const end = d.steps[d.steps.length - 1];
    expect(end.kind === 'beam' && end.done).toBe(true);
    expect([...hyps, ...beams].some((h) => h.length === d.tokens.length && h.every((t, i) => t === d.tokens[i]))).toBe(true);
    expect(d.lens.columns.filter((c) => c.kind === 'generated').map((c) => c.token)).toEqual(d.tokens);
  });
});

describe('divergence overlay', () => {
  let perturbedDump: string, cleanDump: string;
  beforeAll(async () => {
    const dir = path.join(tmp, 'perturbed');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(W)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(W, f), path.join(dir, f));
    const src = SafetensorsFile.open(path.join(W, 'model.safetensors'));
    const target = 'llm.model.layers.1.mlp.down_proj.weight'; // as test/parity_loop.test.ts
    writeSafetensors(path.join(dir, 'model.safetensors'), src.keys().map((k): TensorToWrite => {
      const data = src.readFloat32(k);
      if (k === target) for (let i = 0; i < data.length; i += 7) data[i] += 0.05;
      return { name: k, dtype: 'F32', shape: src.info(k).shape, data };
    }));
    src.close();
    perturbedDump = path.join(tmp, 'perturbed.safetensors');
    cleanDump = path.join(tmp, 'clean.safetensors');
    const args = ['--image', IMAGE, '--prompt', PROMPT];
    expect((await cli('trace', '--model', dir, ...args, '--out', perturbedDump)).code).toBe(0);
    expect((await cli('trace', '--model', W, ...args, '--out', cleanDump, '--hooks', 'vpm.norm,resampler.**,llm.model.layers.*,logits')).code).toBe(0);
  }, 120_000);

  const run = (dump: string) => {
    const cmp = DumpComparer.open(dump, model.cfg, encodePrompt(tok, buildPrompt(msgs, 64)).ids.length);
    try {
      return collectInspection(model, tok, { msgs, image, decode: decode('greedy', 2), compare: cmp }).divergence!;
    } finally {
      cmp.close();
    }
  };

  it('names llm.model.layers.1.mlp first for a dump of a model perturbed there, with its largest differences', () => {
    const dv = run(perturbedDump);
    expect(dv.firstFailure).toBe('llm.model.layers.1.mlp');
    const byKey = new Map(dv.results.map((r) => [r.key, r]));
    expect(dv.results.map((r) => r.key)).toEqual(hookNames(model.cfg)); // every hook, model order
    for (const k of ['vpm.norm', 'resampler.attn.weights', 'llm.model.layers.0', 'llm.model.layers.1.self_attn', 'llm.model.layers.1.post_attention_layernorm']) {
      expect([k, byKey.get(k)!.pass]).toEqual([k, true]);
    }
    const first = byKey.get('llm.model.layers.1.mlp')!;
    expect(first.status).toBe('FAIL');
    expect(first.top.length).toBe(5);
    expect(first.top[0].absDiff).toBeGreaterThan(first.tol!.atol + first.tol!.rtol * Math.abs(first.top[0].expected));
    expect(byKey.get('logits')!.pass).toBe(false);
  });

  it('a dump of the same model passes everywhere; the hooks it lacks are listed', () => {
    const dv = run(cleanDump);
    expect(dv.firstFailure).toBeNull();
    expect(dv.results.length).toBeGreaterThan(8);
    expect(dv.results.every((r) => r.pass)).toBe(true);
    expect(dv.missing).toContain('vpm.blocks.0');
  });
});

describe('page and server', () => {
  const data = () => collectInspection(model, tok, { msgs, image, decode: decode('greedy', 3) });

  it('--static is one file: data, script and styles inlined, no URL but the SVG namespace', () => {
    const html = staticPage(data());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<link|\bsrc=|@import|url\(/i);
    expect(html.match(/https?:\/\/[^"'\s)]+/g)).toEqual(['http://www.w3.org/2000/svg']);
    const json = /<script type="application\/json" id="inspect-data">([\s\S]*?)<\/script>/.exec(html)![1];
    expect(JSON.parse(json).format).toBe('minicpmv-inspect');
  });

  it('serves /, its script, styles and data on 127.0.0.1 only; 503 before the data, 404 elsewhere, 421 for another host', async () => {
    const server = await startServer(0);
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect((await fetch(`${server.url}data.json`)).status).toBe(503);
      server.ready(JSON.stringify(data()));
      const page = await fetch(server.url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(await page.text()).toMatch(/<script src="inspect.js"><\/script>/);
      expect((await fetch(`${server.url}inspect.js`)).headers.get('content-type')).toMatch(/javascript/);
      expect((await fetch(`${server.url}inspect.css`)).status).toBe(200);
      expect((await (await fetch(`${server.url}data.json`)).json()).format).toBe('minicpmv-inspect');
      expect((await fetch(`${server.url}../weights/tiny/config.json`)).status).toBe(404);
      expect((await fetch(`${server.url}src/inspect/page.ts`)).status).toBe(404);
      const other = await new Promise<string>((resolve) => {
        const s = net.connect(server.port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n'));
        let buf = '';
        s.on('data', (b) => { buf += b; }).on('end', () => resolve(buf));
      });
      expect(other).toMatch(/^HTTP\/1\.1 421/);
    } finally {
      await server.close();
    }
  });
});

describe('bad input: one line, exit code 2', () => {
  const base = ['inspect', '--model', W, '--image', IMAGE, '--prompt', PROMPT];

  it('a port in use (the real command)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'minicpmv.js'), ...base, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      child.stdout.on('data', (b) => { out += b; });
      child.stderr.on('data', (b) => { err += b; });
      const code = await new Promise<number | null>((r) => child.on('close', r));
      expect(code).toBe(2);
      expect(out).toBe('');
      expect(err.trim().split('\n')).toEqual([`minicpmv inspect: port ${port} on 127.0.0.1 is in use; pass another --port (or --port 0 for any free one)`]);
    } finally {
      blocker.close();
    }
  });

  it.each([
    ['a missing dump', () => path.join(tmp, 'nope.safetensors'), /--compare .*nope\.safetensors: no such file$/],
    ['a directory', () => tmp, /--compare .*: not a regular file$/],
    ['a file that is not safetensors', () => { const f = path.join(tmp, 'junk.safetensors'); fs.writeFileSync(f, 'not a dump at all'); return f; }, /--compare: cannot read the dump: .*junk\.safetensors/],
    ['a dump of a deeper model', () => {
      const f = path.join(tmp, 'deep.safetensors');
      writeSafetensors(f, [{ name: 'llm.model.layers.39', dtype: 'F32', shape: [1, 81, 128], data: new Float32Array(81 * 128) }]);
      return f;
    }, /is a dump of another model: it has llm\.model\.layers\.39; this model has 2 decoder layers$/],
    ['a dump of a wider model', () => {
      const f = path.join(tmp, 'wide.safetensors');
      writeSafetensors(f, [{ name: 'resampler', dtype: 'F32', shape: [1, 64, 2304], data: new Float32Array(64 * 2304) }]);
      return f;
    }, /is a dump of another model: resampler has shape \[1, 64, 2304\] there, this model gives \[1, 64, 128\]$/],
    ['a file with no hook key', () => {
      const f = path.join(tmp, 'other.safetensors');
      writeSafetensors(f, [{ name: 'model.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
      return f;
    }, /none of its 1 keys is a hook point of this model/],
  ] as [string, () => string, RegExp][])('%s for --compare', async (_, make, re) => {
    const r = await cli(...base, '--compare', make());
    expect(r.code).toBe(2);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(/^minicpmv inspect: /);
    expect(r.lines[0]).toMatch(re);
  });

  it.each([
    [['--port', '70000'], /--port must be in 0\.\.65535/],
    [['--static', path.join(os.tmpdir(), 'no-such-dir-inspect', 'x.html')], /folder .* does not exist/],
    [['--static', 'x.html', '--port', '0'], /--static writes a file and serves nothing/],
    [['--lens-positions', '0'], /--lens-positions must be at least 1/],
  ] as [string[], RegExp][])('%j', async (extra, re) => {
    const r = await cli(...base, ...extra);
    expect(r.code).toBe(2);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(re);
  });
});
