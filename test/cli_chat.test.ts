// The `minicpmv` command on the bundled tiny model, as a user runs it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadTokenizerFile } from '../src/tokenizer/file.ts';
import { bin, cli } from './helpers/cli.ts';
import { repoRoot } from './helpers/paths.ts';

const img = path.join(repoRoot, 'examples', 'red_ball.png');
const bundled = path.join(repoRoot, 'weights', 'tiny');
const tok = loadTokenizerFile(path.join(repoRoot, 'weights', 'tiny', 'tokenizer.model'));

const run = (args: string[], input?: string) => cli(args, { input });
/** stderr lines without the interactive prompt markers ("> ") in front. */
const lines = (stderr: string) => stderr.split('\n').map((l) => l.replace(/^(> )+/, ''));

describe('minicpmv chat on the bundled model', () => {
  it('--json prints {answer, tokens, timings}; tokens are the raw ids, answer their clean-up', () => {
    const r = run(['chat', '--image', img, '--prompt', 'What is in the image?', '--decode', 'greedy', '--max-new-tokens', '6', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tokens).toHaveLength(6);
    expect(j.answer).toBe(tok.decode(j.tokens.filter((t: number) => t !== 0 && t !== tok.eosId)).trim());
    for (const k of ['loadMs', 'imageEncodeMs', 'prefillTokPerS', 'decodeTokPerS', 'peakRssMiB']) expect(j.timings[k]).toBeGreaterThan(0);
    expect(j.timings.prefillTokens).toBe(81); // <s> + <用户>(3) + <image> + 64 <unk> + </image> + \n + question + <AI>(3)
  });

  it('says it is the random tiny model and how to use the real weights', () => {
    const r = run(['chat', '--image', img, '--prompt', 'Hi', '--max-new-tokens', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/bundled tiny model with RANDOM weights/);
    expect(r.stderr).toMatch(/openbmb\/MiniCPM-V.*--model/);
    expect(r.stderr).toMatch(/\[load .* \| image encode .* \| prefill .* tok\/s \| decode .* \| peak RSS \d+ MiB\]/);
    expect(r.stderr).toMatch(/^backend: cpu/m);
  });

  it('greedy output streams the same text the JSON answer holds', () => {
    const args = ['chat', '--image', img, '--prompt', 'Describe it.', '--decode', 'greedy', '--max-new-tokens', '8'];
    const streamed = cli(args), json = run([...args, '--json']);
    expect(streamed.stdout.trim()).toBe(JSON.parse(json.stdout).answer);
  });

  it('interactive: one question per line, the image encoded once, history kept', () => {
    const r = run(['chat', '--image', img, '-i', '--decode', 'greedy', '--max-new-tokens', '4'], 'First question?\nSecond one?\n');
    expect(r.code, r.stderr).toBe(0);
    const summaries = lines(r.stderr).filter((l) => l.startsWith('['));
    expect(summaries).toHaveLength(2);
    expect(summaries[0]).toMatch(/image encode/);
    expect(summaries[1]).not.toMatch(/image encode/);
    const prefill = summaries.map((s) => Number(/prefill (\d+) tok/.exec(s)![1]));
    expect(prefill[1]).toBeGreaterThan(prefill[0]); // the second prompt carries the first turn
  });

  it('sampling is reproducible for a seed', () => {
    const args = ['chat', '--image', img, '--prompt', 'Hi', '--decode', 'sample', '--seed', '11', '--max-new-tokens', '6', '--json'];
    expect(JSON.parse(cli(args).stdout).tokens).toEqual(JSON.parse(cli(args).stdout).tokens);
  });
});

describe('minicpmv chat: the habits of llama.cpp and ollama', () => {
  it('-m, -p, -n and --temp are the long flags', () => {
    const long = run(['chat', '--model', bundled, '--image', img, '--prompt', 'Hi', '--decode', 'sample', '--temperature', '0.9',
      '--seed', '3', '--max-new-tokens', '5', '--json']);
    const short = run(['chat', '-m', bundled, '--image', img, '-p', 'Hi', '--decode', 'sample', '--temp', '0.9', '--seed', '3', '-n', '5', '--json']);
    expect(short.code, short.stderr).toBe(0);
    expect(JSON.parse(short.stdout).tokens).toEqual(JSON.parse(long.stdout).tokens);
    expect(JSON.parse(short.stdout).tokens).toHaveLength(5);
    const help = run(['chat', '--help']).stdout;
    for (const f of ['-m, --model', '-p, --prompt', '-n, --max-new-tokens', '--temp, --temperature', '-i, --interactive']) expect(help).toContain(f);
  });

  it('--json names the backend, the native ops in use and the resident weights', () => {
    const j = JSON.parse(run(['chat', '--image', img, '-p', 'Hi', '--decode', 'greedy', '-n', '2', '--json']).stdout);
    expect(j.backend).toEqual({ name: 'cpu', provider: null, nativeOps: [], fallbackReason: expect.any(String) });
    expect(j.weights.dtype).toBe('f32');
    expect(j.weights.residentBytes).toBeGreaterThan(1e6);
    expect(j.stopped).toBe(false);
  });

  it('interactive: a prompt marker, /clear, /image, unknown commands, /quit', () => {
    const other = path.join(repoRoot, 'examples', 'chessboard.png');
    const r = run(['chat', '--image', img, '-i', '--decode', 'greedy', '-n', '3'],
      `First?\nSecond?\n/clear\nFirst?\n/image ${other}\nFirst?\n/bogus\n/image ${path.join(repoRoot, 'nope.png')}\n/quit\nnever asked\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\/clear starts a new conversation.*\/image PATH.*\/quit/);
    expect(r.stderr.match(/^> /gm)!.length).toBeGreaterThanOrEqual(8);
    const prefill = lines(r.stderr).filter((l) => l.startsWith('[')).map((s) => Number(/prefill (\d+) tok/.exec(s)![1]));
    expect(prefill).toHaveLength(4); // First, Second, First (cleared), First (new image); "never asked" comes after /quit
    expect(prefill[1]).toBeGreaterThan(prefill[0]);
    expect(prefill[2]).toBe(prefill[0]); // /clear: the same image, a new conversation
    expect(prefill[3]).toBe(prefill[0]); // /image: a new image and conversation
    expect(lines(r.stderr).filter((l) => l.startsWith('[')).filter((l) => /image encode/.test(l))).toHaveLength(2);
    expect(r.stderr).toContain('unknown command /bogus; /clear, /image PATH, /quit');
    expect(r.stderr).toMatch(/minicpmv chat: .*nope\.png/);
  });

  it('a prompt over the 2048-token limit is refused before loading, unless --truncate (which says what it cut)', () => {
    const long = Array.from({ length: 2500 }, (_, i) => `w${i}`).join(' ');
    const refused = run(['chat', '--image', img, '-p', long, '--decode', 'greedy', '-n', '2']);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/the prompt is \d+ tokens, longer than the 2048-token input limit.*--truncate/);
    expect(refused.stderr).not.toMatch(/loading weights/);
    const cut = run(['chat', '--image', img, '-p', long, '--decode', 'greedy', '-n', '2', '--truncate', '--json']);
    expect(cut.code, cut.stderr).toBe(0);
    expect(cut.stderr).toMatch(/note: the prompt has (\d+) tokens; keeping the first 2048, as the original chat\(\) does \(\d+ cut from the end\)/);
    expect(cut.stderr.indexOf('note: the prompt has')).toBeLessThan(cut.stderr.indexOf('loading weights'));
    expect(JSON.parse(cut.stdout).timings.prefillTokens).toBe(2048);
  });

  it('Ctrl-C stops the answer, prints what came so far and the timings, exit 130', async () => {
    const child = spawn(process.execPath, [bin, 'chat', '--image', img, '-p', 'Go on.', '--decode', 'greedy', '-n', '100000'],
      { env: { ...process.env, MINICPMV_BACKEND: 'cpu', MINICPMV_FROM_SOURCE: '1' } });
    let out = '', err = '';
    child.stdout.on('data', (d) => {
      if (!out) child.kill('SIGINT'); // once, at the first streamed text (a second Ctrl-C would end the process)
      out += d;
    });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, err).toBe(130);
    expect(out.trim().length).toBeGreaterThan(0);
    expect(err).toMatch(/\[load .* \| decode \d+ steps .* \| interrupted\]/);
    const steps = Number(/decode (\d+) steps/.exec(err)![1]);
    expect(steps).toBeLessThan(100000);
  });
});

describe('minicpmv tokenize and info', () => {
  it('--text / --ids round trip and --file jsonl', () => {
    const enc = run(['tokenize', '--text', '<用户>hello world<AI>', '--json']);
    const { ids, pieces } = JSON.parse(enc.stdout);
    expect(ids).toEqual(tok.encode('<用户>hello world<AI>'));
    expect(pieces[0]).toBe('<s>');
    const dec = run(['tokenize', '--ids', ids.slice(1).join(',')]);
    expect(dec.stdout.trim()).toBe('<用户>hello world<AI>');
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tok-')), 'in.jsonl');
    fs.writeFileSync(f, '"a b"\n"<image>x"\n');
    const lines = run(['tokenize', '--file', f]).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([tok.encode('a b'), tok.encode('<image>x')]);
  });

  it('info reports sizes, parameter counts and the backend', () => {
    const r = run(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.backend).toBe('cpu');
    expect(j.llm.hidden).toBe(128);
    expect(j.parameters.total).toBe(j.parameters.vision + j.parameters.resampler + j.parameters.llm);
    expect(j.memory.weightsFloat32Bytes).toBe(j.parameters.total * 4);
  });
});
