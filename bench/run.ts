// The model benchmark: this project against the PyTorch reference in fp32 AND in bf16 (the dtype the
// original card runs), on the same weights, with the machine's limits, all measured in one run.
//   npm run bench        quick: the bundled tiny model
//   npm run bench:full   the full-size architecture with random bf16 weights, made once by
//                        `minicpmv random-weights` into a cache directory
// Options: --model DIR, --reps N, --steps N, --long N (1000), --longest N (2000), --with-f32 (also this
// project with --weights-dtype f32), --baseline DIR (also an older checkout of this project, with its own
// node_modules and native build: its bench/measure.ts, for "no slower than before").
// Writes bench/RESULTS.md and bench/RESULTS.json (RESULTS-quick.* with --quick). Ratios are same-run only.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAvailable } from '../src/backend/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const full = args.includes('--full');
const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const cacheDir = process.env.MINICPMV_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'minicpmv-ts');
const py = path.join(root, 'reference', '.venv', 'bin', 'python');
const threads = 2;
const log = (s: string) => process.stderr.write(`${s}\n`);

function modelDir(): string {
  if (arg('model')) return arg('model')!;
  if (!full) return path.join(root, 'weights', 'tiny');
  const dir = path.join(cacheDir, 'bench', 'random-bf16');
  if (!fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    const config = path.resolve(root, '..', 'shared', 'reference', 'config.json');
    if (!fs.existsSync(config)) throw new Error(`bench:full needs the real config.json (looked at ${config}) or --model DIR`);
    log(`generating the full-size random checkpoint once into ${dir} (6.9 GB)`);
    execFileSync(process.execPath, [path.join(root, 'bin', 'minicpmv.js'), 'random-weights', '--config', config, '--out', dir,
      '--dtype', 'bf16', '--seed', '0'], { stdio: 'inherit' });
  }
  return dir;
}

type Result = Record<string, unknown>;
function runJson(cmd: string, argv: string[], cwd = root): Result {
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', env: process.env, maxBuffer: 1 << 26 });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  log(`  ... ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0 || !line) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ') || `exit ${r.status}` };
  return JSON.parse(line);
}

const dir = modelDir();
const reps = arg('reps') ?? (full ? '2' : '3');
const steps = arg('steps') ?? '8';
const long = arg('long') ?? (full ? '1000' : '200');
const longest = arg('longest') ?? (full ? '2000' : '300');
const phase = ['--reps', reps, '--steps', steps, '--long', long, '--longest', longest];
const tsx = (script: string, cwd = root) => [path.join(cwd, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(cwd, 'bench', script)];

const impls: { name: string; result: Result }[] = [];
const measure = (name: string, cmd: string, argv: string[], cwd = root) => {
  log(`measuring ${name} ...`);
  impls.push({ name, result: runJson(cmd, argv, cwd) });
};
if (nativeAvailable().ok) {
  measure('minicpmv-ts (bf16 resident)', process.execPath, [...tsx('measure.ts'), '--model', dir, '--backend', 'tensorflow', ...phase]);
  if (args.includes('--with-f32')) {
    measure('minicpmv-ts (--weights-dtype f32)', process.execPath, [...tsx('measure.ts'), '--model', dir, '--backend', 'tensorflow',
      '--weights-dtype', 'f32', ...phase]);
  }
} else {
  measure('minicpmv-ts (cpu backend)', process.execPath, [...tsx('measure.ts'), '--model', dir, '--backend', 'cpu', ...phase]);
}
const baseline = arg('baseline');
if (baseline) {
  const commit = spawnSync('git', ['-C', baseline, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout?.trim() || path.basename(baseline);
  measure(`minicpmv-ts before (${commit})`, process.execPath, [...tsx('measure.ts', baseline), '--model', dir, '--backend', 'tensorflow',
    '--reps', reps, '--decode-tokens', steps], baseline);
}
let limits: Result = { error: 'reference/.venv is missing (see reference/README.md)' };
if (fs.existsSync(py)) {
  for (const dtype of ['fp32', 'bf16']) {
    measure(`PyTorch ${dtype}`, py, [path.join(root, 'reference', 'bench.py'), '--model', dir, '--threads', String(threads), '--dtype', dtype, ...phase]);
  }
  log('measuring the machine limits (matmul GFLOP/s, triad and read bandwidth) ...');
  limits = runJson(py, [path.join(root, 'bench', 'limits.py'), '--threads', String(threads)]);
}

// ---- report ----
const num = (v: unknown, d = 2) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '–');
const ours = impls[0].result;
const pt = (dtype: string) => impls.find((i) => i.name === `PyTorch ${dtype}`)?.result ?? { error: 'not run' };
const lim = limits as Record<string, number>;
const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const date = new Date().toISOString().slice(0, 10);
const sec = (ms: unknown) => (typeof ms === 'number' ? ms / 1000 : undefined);
// [label, key, format, better: 'lower' | 'higher']
const ROWS: [string, (r: Result) => number | undefined, number, 'lower' | 'higher'][] = [
  ['load s', (r) => sec(r.loadMs), 2, 'lower'],
  ['image encode s', (r) => sec(r.encodeMs), 2, 'lower'],
  ['prefill (80 tokens) tok/s', (r) => r.prefillTokPerS as number, 1, 'higher'],
  [`greedy step ms, ${80} context`, (r) => (r.greedyStepMs_short ?? r.decodeMsPerToken) as number, 1, 'lower'],
  [`greedy step ms, ${long} context`, (r) => r.greedyStepMs_long as number, 1, 'lower'],
  [`beam-3 step ms, 80 context`, (r) => r.beam3StepMs_short as number, 1, 'lower'],
  [`beam-3 step ms, ${long} context`, (r) => r.beam3StepMs_long as number, 1, 'lower'],
  ['decode ms/token, 100 context', (r) => r.decodeMs_100 as number, 1, 'lower'],
  [`decode ms/token, ${longest} context`, (r) => r.decodeMs_longest as number, 1, 'lower'],
  ['slowest greedy step ms, positions 254–259', (r) => r.worstStepMs_256 as number, 1, 'lower'],
  ['peak RSS GiB, 80 context', (r) => (r.peakGiB_short ?? r.peakGiB) as number, 2, 'lower'],
  [`peak RSS GiB, beams at ${long} context`, (r) => r.peakGiB_long as number, 2, 'lower'],
  ['peak RSS GiB, whole run', (r) => r.peakGiB as number, 2, 'lower'],
];
const ratio = (a: number | undefined, b: number | undefined, better: 'lower' | 'higher') =>
  a !== undefined && b !== undefined && a > 0 && b > 0 ? (better === 'lower' ? b / a : a / b).toFixed(2) : '–';
const head = impls.map((i) => i.name);
const lines: string[] = [
  `# Benchmark results (${full ? 'full-size architecture, random weights' : 'bundled tiny model'})`, '',
  `- date: ${date}; machine: ${cpuModel}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.platform()}/${os.arch()}`,
  `- model: ${full && !arg('model') ? 'random full-size bf16 checkpoint (minicpmv random-weights, seed 0)' : path.basename(dir)}; ` +
    `${reps} timed repetitions of encode/prefill, ${steps} timed steps per step figure, medians`,
  `- versions: Node ${process.version}, @tensorflow/tfjs-core 4.22.0, TensorFlow C API ${ours.tfVersion ?? '–'}; ` +
    `PyTorch ${pt('fp32').torch ?? '–'} (${threads} threads); ${ours.backendLine ?? ''}`,
  `- machine limits (same run): best fp32 matmul ${num(lim.matmulGflops, 1)} GFLOP/s (torch); ` +
    `triad ${num(lim.triadGBs, 1)} GB/s; read ${num(lim.readGBs, 1)} GB/s`,
  '', `| | ${head.join(' | ')} | ratio vs PyTorch bf16 | ratio vs PyTorch fp32 |`, `|---|${head.map(() => '---').join('|')}|---|---|`,
];
for (const [label, get, d, better] of ROWS) {
  const vals = impls.map((i) => ('error' in i.result ? undefined : get(i.result)));
  lines.push(`| ${label} | ${vals.map((v) => num(v, d)).join(' | ')} | ${ratio(vals[0], get(pt('bf16')), better)} | ${ratio(vals[0], get(pt('fp32')), better)} |`);
}
for (const i of impls) if ('error' in i.result) lines.push('', `- ${i.name}: error: ${String(i.result.error).slice(0, 300)}`);
lines.push('', 'Ratios: > 1 means minicpmv-ts (first column) is better (faster, or less memory).');
if (!('error' in ours)) {
  const w = ours.weights as { dtype: string; residentBytes: number; fileBackedBytes?: number };
  const bytes = ours.decodeBytesPerToken as number, params = bytes / (w.dtype === 'f32' ? 4 : 2);
  const inPlace = w.fileBackedBytes ? ` (${num(w.fileBackedBytes / 2 ** 30)} GiB of it used in place in the checkpoint's page cache)` : '';
  lines.push('', `- weights: ${w.dtype} resident, ${num(w.residentBytes / 2 ** 30)} GiB${inPlace}; load ${num(sec(ours.loadMs))} s vs a raw read of the ` +
    `checkpoint (${num((ours.checkpointBytes as number) / 1e9)} GB) just before it ${num(sec(ours.rawReadMs))} s: ` +
    `${num((ours.loadMs as number) / (ours.rawReadMs as number))}x.`);
  lines.push(`- beam-3 step / greedy step: ${num((ours.beam3StepMs_short as number) / (ours.greedyStepMs_short as number))} at 80 context, ` +
    `${num((ours.beam3StepMs_long as number) / (ours.greedyStepMs_long as number))} at ${long}; decode at ${longest} / at 100: ` +
    `${num((ours.decodeMs_longest as number) / (ours.decodeMs_100 as number))} (its steps alternate); beam-3 / greedy with ` +
    `their steps alternating: ${num(ours.beam3OverGreedyPaired_short as number)} at 80, ${num(ours.beam3OverGreedyPaired_long as number)} at ${long}.`);
  if (typeof lim.readGBs === 'number') {
    const bound = (b: number) => (b / (lim.readGBs * 1e9)) * 1000;
    const b16 = bound(params * 2), b32 = bound(params * 4), step = ours.greedyStepMs_short as number;
    lines.push(`- decode vs the read-bandwidth bound: ${num(params * 2 / 1e9)} GB of bf16 weights per token / ${num(lim.readGBs, 1)} GB/s = ` +
      `${num(b16, 0)} ms (fp32: ${num(params * 4 / 1e9)} GB, ${num(b32, 0)} ms); greedy step ${num(step, 0)} ms = ` +
      `${num((100 * b16) / step, 0)}% of the bf16 bound.`);
  }
  // The decode-at-longest ratio a step bound by reading its bytes would show: weights plus the fp32 KV cache of the
  // context, at longest against at 100 positions; and the rate at which the measured steps read the extra cache.
  const kv = ours.kvBytesPerPosition as number | undefined, n = Number(longest), wBytes = params * 2;
  const t100 = ours.decodeMs_100 as number, tn = ours.decodeMs_longest as number;
  if (kv && n > 100 && t100 > 0 && tn > 0) {
    const extra = (n - 100) * kv;
    lines.push(`- decode at ${n} / at 100 if bound by its reads: (${num(wBytes / 1e9)} + ${num((n * kv) / 1e9)} GB of fp32 KV cache) / ` +
      `(${num(wBytes / 1e9)} + ${num((100 * kv) / 1e9)} GB) = ${num((wBytes + n * kv) / (wBytes + 100 * kv))}; ` +
      `measured ${num(tn / t100)}: the ${num(extra / 1e9)} GB more of cache cost ${num(tn - t100, 1)} ms more per step ` +
      `(${num(extra / ((tn - t100) * 1e6), 1)} GB/s).`);
  }
  const b16 = pt('bf16');
  if (!('error' in b16)) {
    lines.push(`- greedy decode tok/s vs PyTorch bf16: ${num((b16.greedyStepMs_short as number) / (ours.greedyStepMs_short as number))}x; ` +
      `peak RSS (beams at ${long}) vs PyTorch bf16: ${num((ours.peakGiB_long as number) / (b16.peakGiB_long as number))}x.`);
  }
}
const md = lines.join('\n') + '\n';
const out = path.join(root, 'bench', full ? 'RESULTS.md' : 'RESULTS-quick.md');
fs.writeFileSync(out, md);
// Paths of this machine stay out of the committed results.
const scrub = (s: string) => [root + path.sep, dir, baseline ?? '\0'].reduce((t, p) => t.split(p).join(p === dir ? `<${path.basename(dir)}>` : ''), s);
fs.writeFileSync(out.replace(/\.md$/, '.json'), scrub(JSON.stringify({ date, full, model: path.basename(dir), impls, limits }, null, 2)) + '\n');
process.stdout.write(md);
log(`wrote ${path.relative(root, out)} and its .json`);
