// Every user mistake through the real command: exit code 2, one clear line on
// stderr, no stack trace.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.ts';
import { repoRoot } from './helpers/paths.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-cli-'));
const gif = path.join(tmp, 'anim.gif');
fs.writeFileSync(gif, Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'));
const corrupt = path.join(tmp, 'broken.png');
fs.writeFileSync(corrupt, Buffer.concat([fs.readFileSync(path.join(repoRoot, 'examples', 'red_ball.png')).subarray(0, 200)]));
const empty = path.join(tmp, 'empty.png');
fs.writeFileSync(empty, '');
const badMsgs = path.join(tmp, 'msgs.json');
fs.writeFileSync(badMsgs, '[{"role": "assistant", "content": "hi"}]');
const img = path.join(repoRoot, 'examples', 'red_ball.png');

function run(...args: string[]) {
  const r = cli(args);
  return { code: r.code, stderr: r.stderr.trim(), stdout: r.stdout.trim() };
}

const CASES: [string, string[], RegExp][] = [
  ['unknown command', ['fly'], /unknown command "fly"/],
  ['unknown flag', ['chat', '--image', img, '--prompt', 'x', '--colour', 'red'], /unknown flag --colour/],
  ['missing model dir', ['chat', '--model', path.join(tmp, 'nope'), '--image', img, '--prompt', 'x'], /nope/],
  ['image not found', ['chat', '--image', path.join(tmp, 'missing.png'), '--prompt', 'x'], /missing\.png/],
  ['unsupported format', ['chat', '--image', gif, '--prompt', 'x'], /GIF/],
  ['corrupt image', ['chat', '--image', corrupt, '--prompt', 'x'], /broken\.png/],
  ['empty image file', ['chat', '--image', empty, '--prompt', 'x'], /empty\.png/],
  ['empty prompt', ['chat', '--image', img, '--prompt', '  '], /--prompt is empty/],
  ['malformed number', ['chat', '--image', img, '--prompt', 'x', '--max-new-tokens', '12abc'], /--max-new-tokens expects a number/],
  ['non-positive max tokens', ['chat', '--image', img, '--prompt', 'x', '--max-new-tokens', '0'], /--max-new-tokens must be an integer in 1\.\.1048576, got 0/],
  ['conflicting flags', ['chat', '--image', img, '--prompt', 'x', '--msgs', badMsgs], /either --prompt or --msgs/],
  ['sampling flag without sampling', ['chat', '--image', img, '--prompt', 'x', '--temperature', '0.7'], /only applies to --decode sample/],
  ['bad top-p', ['chat', '--image', img, '--prompt', 'x', '--decode', 'sample', '--top-p', '1.5'], /--top-p must be in \(0, 1\]/],
  ['bad decode choice', ['chat', '--image', img, '--prompt', 'x', '--decode', 'fast'], /must be one of beam, greedy, sample/],
  ['first message not from the user', ['chat', '--image', img, '--msgs', badMsgs], /first message must be from the user/],
  ['reserved token typed by the user', ['chat', '--image', img, '--prompt', 'look <image> here'], /reserved token string "<image>"/],
  ['unknown backend', ['info', '--backend', 'metal'], /unknown backend "metal".*available: tensorflow, cpu/],
  ['tokenize without input', ['tokenize'], /one of --text, --file or --ids is required/],
  ['tokenize bad ids', ['tokenize', '--ids', '1,x,3'], /"x" is not a non-negative integer/],
  ['trace unknown hook', ['trace', '--image', img, '--prompt', 'x', '--out', path.join(tmp, 't.safetensors'), '--hooks', 'vpm.blockz.*'],
    /matches no hook; valid hooks: .*vpm\.blocks\.\{i\}/],
  ['compare a non-safetensors file', ['compare', img, img], /red_ball\.png/],
  ['convert from a missing directory', ['convert', path.join(tmp, 'nope'), path.join(tmp, 'out')], /nope/],
];

describe('bad input through the real command', () => {
  it.each(CASES)('%s: exit 2 with one line', (_name, args, pattern) => {
    const r = run(...args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !/^backend: /.test(l) && !/^note: using the bundled/.test(l));
    expect(lines.length, r.stderr).toBe(1);
    expect(lines[0]).toMatch(pattern);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('--help on every command exits 0 and lists its flags', () => {
    for (const c of ['chat', 'tokenize', 'info', 'convert', 'random-weights', 'trace', 'compare']) {
      const r = run(c, '--help');
      expect(r.code, `${c}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`usage: minicpmv ${c}`));
      expect(r.stdout).toMatch(/--/);
    }
    const top = run('--help');
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('random-weights');
  });
});
