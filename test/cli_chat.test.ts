// The `minicpmv` command on the bundled tiny model, as a user runs it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizerFile } from '../src/tokenizer/file.ts';
import { cli } from './helpers/cli.ts';
import { repoRoot } from './helpers/paths.ts';

const img = path.join(repoRoot, 'examples', 'red_ball.png');
const tok = loadTokenizerFile(path.join(repoRoot, 'weights', 'tiny', 'tokenizer.model'));

const run = (args: string[], input?: string) => cli(args, { input });

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
    const summaries = r.stderr.split('\n').filter((l) => l.startsWith('['));
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
