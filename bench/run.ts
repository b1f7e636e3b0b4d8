// The model benchmark: this project per backend against the PyTorch reference
// on the same weights, and against the machine's limits, measured in one run.
//   npm run bench        quick: the bundled tiny model
//   npm run bench:full   the full-size architecture with random weights, made
//                        once by `minicpmv random-weights` into a cache directory
// Writes bench/RESULTS.md (markdown, with date, machine, versions) and bench/RESULTS.json (RESULTS-quick.* with --quick).
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

function runJson(cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): Record<string, unknown> | { error: string } {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (r.status !== 0 || !line) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ') || `exit ${r.status}` };
  return JSON.parse(line);
}

const dir = modelDir();
const reps = arg('reps') ?? (full ? '2' : '3');
const backends = (arg('backends') ?? (full ? 'tensorflow' : 'tensorflow,cpu')).split(',')
  .filter((b) => b !== 'tensorflow' || nativeAvailable().ok);
const results: Record<string, Record<string, unknown>> = {};
for (const b of backends) {
  log(`measuring this project on ${b} ...`);
  results[b] = runJson(process.execPath, [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(root, 'bench', 'measure.ts'),
    '--model', dir, '--backend', b, '--reps', reps]) as Record<string, unknown>;
}
let pytorch: Record<string, unknown> | { error: string } = { error: 'reference/.venv is missing (see reference/README.md)' };
let limits: Record<string, unknown> | { error: string } = { error: 'reference/.venv is missing' };
if (fs.existsSync(py)) {
  log('measuring the PyTorch reference (fp32, same weights, same thread count) ...');
  pytorch = runJson(py, [path.join(root, 'reference', 'bench.py'), '--model', dir, '--threads', String(threads), '--reps', reps]);
  log('measuring the machine limits (matmul GFLOP/s, triad memory bandwidth) ...');
  limits = runJson(py, [path.join(root, 'bench', 'limits.py'), '--threads', String(threads)]);
}

// ---- report ----
const num = (v: unknown, d = 2) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '–');
const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? (a / b).toFixed(2) : '–');
const pt = pytorch as Record<string, number>;
const lim = limits as Record<string, number>;
const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const date = new Date().toISOString().slice(0, 10);
const lines: string[] = [
  `# Benchmark results (${full ? 'full-size architecture, random weights' : 'bundled tiny model'})`, '',
  `- date: ${date}; machine: ${cpuModel}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.platform()}/${os.arch()}`,
  `- model: ${path.relative(root, dir).startsWith('..') ? (full && !arg('model') ? 'random full-size bf16 checkpoint (minicpmv random-weights, seed 0)' : path.basename(dir)) : path.relative(root, dir)}; ` +
    `${reps} timed repetitions after a warm-up, medians`,
  `- versions: Node ${process.version}, @tensorflow/tfjs-core 4.22.0, TensorFlow C API ${(Object.values(results)[0] as Record<string, unknown>)?.tfVersion ?? '–'}; ` +
    `PyTorch ${pt.torch ?? '–'} (${threads} threads)`,
  `- machine limits (same run): best fp32 matmul ${num(lim.matmulGflops, 1)} GFLOP/s (torch); ` +
    `triad bandwidth ${num(lim.triadGBs, 1)} GB/s; read bandwidth ${num(lim.readGBs, 1)} GB/s`,
  '',
  '| implementation | load s | load peak GiB | image encode s | prefill tok/s | decode ms/token | decode tok/s | peak RSS GiB |',
  '|---|---|---|---|---|---|---|---|',
];
const row = (name: string, r: Record<string, unknown>) => 'error' in r
  ? `| ${name} | error: ${String(r.error).slice(0, 120)} |||||||`
  : `| ${name} | ${num((r.loadMs as number) / 1000)} | ${num(r.loadPeakGiB)} | ${num((r.encodeMs as number) / 1000)} | ${num(r.prefillTokPerS, 1)} | ` +
    `${num(r.decodeMsPerToken, 1)} | ${num(r.decodeTokPerS, 2)} | ${num(r.peakGiB)} |`;
for (const [b, r] of Object.entries(results)) lines.push(row(`minicpmv-ts, ${b}`, r));
lines.push(row('PyTorch reference, fp32', pytorch as Record<string, unknown>));
lines.push('', '| ratio (minicpmv-ts / PyTorch; > 1 is faster) | image encode | prefill | decode |', '|---|---|---|---|');
for (const [b, r] of Object.entries(results)) {
  if ('error' in r || 'error' in pytorch) continue;
  lines.push(`| ${b} | ${ratio(pt.encodeMs, r.encodeMs)} | ${ratio(r.prefillTokPerS, pt.prefillTokPerS)} | ${ratio(pt.decodeMsPerToken, r.decodeMsPerToken)} |`);
}
const tfr = results.tensorflow as Record<string, number> | undefined;
if (tfr && !('error' in tfr)) {
  const llmBytes = tfr.decodeBytesPerToken; // fp32 weights a decode step reads (all llm tensors but embed_tokens)
  lines.push('', `- memory: resident weights ${num(tfr.weightGiB)} GiB float32 for ${(tfr.params / 1e9).toFixed(3)} B parameters ` +
    `(theory: ${(tfr.params * 4 / 2 ** 30).toFixed(2)} GiB); peak RSS ${num(tfr.peakGiB)} GiB.`);
  if (typeof lim.readGBs === 'number') {
    const boundMs = (llmBytes / (lim.readGBs * 1e9)) * 1000;
    lines.push(`- decode vs the memory-bandwidth bound: ~${(llmBytes / 1e9).toFixed(2)} GB of fp32 weights read per token / ` +
      `${num(lim.readGBs, 1)} GB/s = ${boundMs.toFixed(0)} ms/token; measured ${num(tfr.decodeMsPerToken, 0)} ms/token = ` +
      `${((boundMs / tfr.decodeMsPerToken) * 100).toFixed(0)}% of the bound.`);
  }
}
const md = lines.join('\n') + '\n';
const out = path.join(root, 'bench', full ? 'RESULTS.md' : 'RESULTS-quick.md');
fs.writeFileSync(out, md);
// Paths of this machine stay out of the committed results.
const json = JSON.stringify({ date, full, model: path.basename(dir), results, pytorch, limits }, null, 2)
  .split(root + path.sep).join('').split(dir).join(`<${path.basename(dir)}>`);
fs.writeFileSync(out.replace(/\.md$/, '.json'), json + '\n');
process.stdout.write(md);
log(`wrote ${path.relative(root, out)} and its .json`);
