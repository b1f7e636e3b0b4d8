// How long `minicpmv` takes before it is useful, as a ratio to `node -e 0` measured in the same run:
// --help, tokenizing two tokens, and the bundled tiny model's first token (greedy, one new token) on the
// native backend and on cpu, each through the compiled bin (dist/, what users run) and, for comparison,
// through the TypeScript sources (tsx). Medians of REPS runs after one warm-up.
//   npx tsx bench/startup.ts [--reps 7] [--out bench/RESULTS-startup.md]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const REPS = Number(opt('reps', '7'));
const OUT = opt('out', path.join(root, 'bench', 'RESULTS-startup.md'));
if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is not built: npm run build');

const bin = path.join(root, 'bin', 'minicpmv.js');
const image = path.join(root, 'examples', 'red_ball.png');

interface Case { name: string; argv: string[]; env?: Record<string, string> }
const firstToken = ['chat', '--image', image, '-p', 'Hi', '--decode', 'greedy', '-n', '1'];
const cases: Case[] = [
  { name: 'node -e 0 (baseline)', argv: ['-e', '0'] },
  { name: 'minicpmv --help', argv: [bin, '--help'] },
  { name: 'minicpmv tokenize --text "hello world"', argv: [bin, 'tokenize', '--text', 'hello world'] },
  { name: 'tiny model, first token (tensorflow)', argv: [bin, ...firstToken, '--backend', 'tensorflow'] },
  { name: 'tiny model, first token (cpu)', argv: [bin, ...firstToken, '--backend', 'cpu'] },
  { name: 'minicpmv --help, from sources (tsx)', argv: [bin, '--help'], env: { MINICPMV_FROM_SOURCE: '1' } },
  { name: 'tiny model, first token (tensorflow), from sources', argv: [bin, ...firstToken, '--backend', 'tensorflow'], env: { MINICPMV_FROM_SOURCE: '1' } },
];

function time(c: Case): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, c.argv, { encoding: 'utf8', env: { ...process.env, MINICPMV_FROM_SOURCE: '', ...c.env } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${c.name} failed (${r.status}): ${r.stderr.slice(-500)}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: { name: string; ms: number }[] = [];
for (const c of cases) {
  time(c);
  const ms = median(Array.from({ length: REPS }, () => time(c)));
  rows.push({ name: c.name, ms });
  console.log(`${c.name.padEnd(56)} ${ms.toFixed(0).padStart(6)} ms`);
}
const base = rows[0].ms;
const md = [
  '# Start-up (bench/startup.ts)',
  '',
  `${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0].model.trim()}, ${os.cpus().length} cores, Node ${process.version}; ` +
    `medians of ${REPS} runs after a warm-up, wall time from spawn to exit.`,
  '',
  '| command | wall | vs `node -e 0` |',
  '|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${(r.ms / 1000).toFixed(2)} s | ${(r.ms / base).toFixed(1)}x |`),
  '',
].join('\n');
fs.writeFileSync(OUT, md);
console.log(`wrote ${path.relative(root, OUT)}`);
