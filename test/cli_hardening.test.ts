// Hostile and careless input through the real command (issue 13): special files, absurd sizes, a closed
// stdout, a config that would allocate before any check. Each ends at once with one line (exit 2) or
// quietly, never with a stack trace, a hang or a memory blow-up. spawnSync timeouts are hang guards only.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/paths.ts';

const bin = path.join(repoRoot, 'bin', 'minicpmv.js');
const tiny = path.join(repoRoot, 'weights', 'tiny');
const img = path.join(repoRoot, 'examples', 'red_ball.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-harden-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const HANG_GUARD_MS = 120_000;

function cli(args: string[], opts: { nodeArgs?: string[] } = {}) {
  const r = spawnSync(process.execPath, [...(opts.nodeArgs ?? []), bin, ...args], {
    encoding: 'utf8', timeout: HANG_GUARD_MS, env: { ...process.env, MINICPMV_BACKEND: 'cpu', MINICPMV_DEBUG: '' },
  });
  const stderr = (r.stderr ?? '').trim();
  const lines = stderr.split('\n').filter((l) => l.trim() && !/^backend: /.test(l) && !/^note: using the bundled/.test(l));
  return { code: r.status, signal: r.signal, stderr, stdout: (r.stdout ?? '').trim(), lines };
}

function expectOneLine(r: ReturnType<typeof cli>, pattern: RegExp): void {
  expect(r.signal, 'the command hung and was killed by the guard').toBeNull();
  expect(r.code, r.stderr).toBe(2);
  expect(r.lines.length, r.stderr).toBe(1);
  expect(r.lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A copy of the bundled tiny model directory with some files replaced. */
function modelDir(name: string, edit: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  fs.cpSync(tiny, dir, { recursive: true });
  edit(dir);
  return dir;
}

const fifo = path.join(tmp, 'pipe');
execFileSync('mkfifo', [fifo]);
const withConfig = (name: string, overrides: Record<string, unknown>) => modelDir(name, (d) => {
  const c = JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...c, ...overrides }));
});

describe('special files are refused at once with one line', () => {
  const fifoConfig = modelDir('fifo-config', (d) => {
    fs.rmSync(path.join(d, 'config.json'));
    execFileSync('mkfifo', [path.join(d, 'config.json')]);
  });
  const zeroTokenizer = modelDir('zero-tokenizer', (d) => {
    fs.rmSync(path.join(d, 'tokenizer.model'));
    fs.symlinkSync('/dev/zero', path.join(d, 'tokenizer.model'));
  });
  const CASES: [string, string[], RegExp][] = [
    ['--msgs /dev/zero', ['chat', '--image', img, '--msgs', '/dev/zero'], /--msgs file \/dev\/zero is a character device, not a regular file/],
    ['--msgs a named pipe', ['chat', '--image', img, '--msgs', fifo], /--msgs file .*pipe is a named pipe, not a regular file/],
    ['tokenize --file a named pipe', ['tokenize', '--file', fifo], /--file .*pipe is a named pipe/],
    ['trace --patch a named pipe', ['trace', '--image', img, '--prompt', 'x', '--out', path.join(tmp, 't.safetensors'),
      '--patch', `vpm.norm=${fifo}`], /--patch file .*pipe is a named pipe/],
    ['compare a named pipe', ['compare', fifo, '/dev/zero'], /A file .*pipe: not a regular file/],
    ['config.json a named pipe', ['info', '--model', fifoConfig], /config .*config\.json is a named pipe/],
    ['tokenizer.model is /dev/zero', ['tokenize', '--model', zeroTokenizer, '--text', 'hi'], /tokenizer model .*tokenizer\.model is a character device/],
    ['random-weights --config /dev/urandom', ['random-weights', '--config', '/dev/urandom', '--out', path.join(tmp, 'rw')], /--config \/dev\/urandom is a character device/],
  ];
  it.each(CASES)('%s', (_name, args, pattern) => expectOneLine(cli(args), pattern));
});

describe('sizes and counts are bounded', () => {
  it('a config that would build a 2.8 GB key list or a 5000-pixel ViT fails on its key (info returns at once)', () => {
    expectOneLine(cli(['info', '--model', withConfig('layers', { num_hidden_layers: 2147483648 })]),
      /"num_hidden_layers" must be an integer in 1\.\.1024, got 2147483648/);
    expectOneLine(cli(['info', '--model', withConfig('depth', { vision_depth: 50_000_000 })]), /"vision_depth" must be an integer in 1\.\.1024/);
    expectOneLine(cli(['info', '--model', withConfig('image', { image_size: 5000 })]), /"image_size" must be an integer in 1\.\.449/);
  });

  it('seeds and token counts out of range are one line, not an internal error or a silent wrap-around', () => {
    expectOneLine(cli(['random-weights', '--config', path.join(tiny, 'config.json'), '--out', path.join(tmp, 'rw'), '--seed', '1e300']),
      /--seed expects an integer below 2\^53, got "1e300"/);
    expectOneLine(cli(['chat', '--image', img, '--prompt', 'x', '--decode', 'sample', '--seed', '4294967296']),
      /--seed must be an integer in 0\.\.4294967295, got 4294967296/);
    expectOneLine(cli(['trace', '--image', img, '--prompt', 'x', '--out', path.join(tmp, 't.safetensors'), '--new-tokens', '99999999']),
      /--new-tokens must be an integer in 0\.\.1048576/);
  });
});

describe('output and error reporting', () => {
  it('`tokenize --file big.jsonl | head -1` ends quietly: exit 0, nothing on stderr', () => {
    const big = path.join(tmp, 'big.jsonl');
    fs.writeFileSync(big, Array.from({ length: 100_000 }, (_, i) => JSON.stringify(`line ${i} of a long file`)).join('\n'));
    const errFile = path.join(tmp, 'epipe.err');
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${bin}" tokenize --file "${big}" 2>"${errFile}" | head -1; ` +
      'echo "exit=${PIPESTATUS[0]}"'], { encoding: 'utf8', timeout: HANG_GUARD_MS });
    expect(r.stdout.split('\n')[0]).toMatch(/^\[1,[\d,]+\]$/);
    expect(r.stdout).toContain('exit=0');
    expect(fs.readFileSync(errFile, 'utf8')).toBe('');
  });

  it('a checkpoint/config mismatch is one line with a count; --verbose adds every problem', () => {
    const hf = withConfig('mismatch', { num_hidden_layers: 3 }); // the checkpoint has 2 layers: 9 tensors missing
    const out = path.join(tmp, 'mismatch-out');
    const plain = cli(['convert', hf, out]);
    expectOneLine(plain, /checkpoint does not match the config \(9 problem\(s\)\): missing llm\.model\.layers\.2\..*; and 6 more \(--verbose lists them all\)/);
    const verbose = cli(['convert', hf, out, '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(2);
    expect(verbose.lines[0]).toBe(plain.lines[0]);
    const listed = verbose.lines.slice(1);
    expect(listed).toHaveLength(9);
    for (const l of listed) expect(l).toMatch(/^ {2}- missing llm\.model\.layers\.2\.\S+: expected shape \[[\d, ]+\]$/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('an internal error is exactly one line plus the hint, with no stack trace', () => {
    // A bug stand-in: a TypeError with a two-line message from deep inside tokenizer loading.
    const inject = path.join(tmp, 'inject.mjs');
    fs.writeFileSync(inject, `import fs from 'node:fs';
const open = fs.openSync;
fs.openSync = (p, ...rest) => {
  if (String(p).endsWith('tokenizer.model')) throw new TypeError('injected bug\\nsecond line of the message');
  return open(p, ...rest);
};`);
    const r = cli(['tokenize', '--text', 'hi'], { nodeArgs: ['--import', inject] });
    expect(r.code, r.stderr).toBe(3);
    expect(r.lines).toEqual([
      'minicpmv tokenize: internal error: injected bug',
      '(set MINICPMV_DEBUG=1 for the stack trace; please report it)',
    ]);
  });
});
