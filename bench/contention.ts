// Decode with the two cores shared: greedy steps alone, then with one competing CPU-bound process (a busy
// loop in another process), for this project's thread policies and the PyTorch rival.
//   tsx bench/contention.ts [--model DIR] [--steps 12]
// Settings: the worker pool as shipped (chunks claimed from a shared counter, idle workers spin
// MINICPMV_SPIN_US = 50 µs then sleep); no spinning (MINICPMV_SPIN_US=0); one thread (MINICPMV_THREADS=1);
// PyTorch bf16 (2 threads). Prints a markdown table; the ratio is contended / alone (same run).
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const model = arg('model', path.join(process.env.MINICPMV_CACHE ?? path.join(os.homedir(), '.cache', 'minicpmv-ts'), 'bench', 'random-bf16'))!;
const steps = Number(arg('steps', '12'));

if (args.includes('--child')) {
  // Load, prefill 80 positions, time greedy steps; then the same with a competitor running.
  const tf = await import('../src/tfjs.ts');
  const { initBackend } = await import('../src/backend/index.ts');
  const { loadModel } = await import('../src/model/load.ts');
  await initBackend('tensorflow');
  const m = loadModel(model);
  const llm = m.llm;
  const cache = llm.newCache();
  tf.dispose(llm.forward(llm.embed(Array.from({ length: 80 }, (_, i) => (i * 7919) % m.cfg.llm.vocab)), { cache, logits: 'last' }));
  const run = () => {
    const ms: number[] = [];
    for (let i = 0; i < steps + 2; i++) {
      const t = performance.now();
      const x = llm.embed([42 + i]);
      const y = llm.forward(x, { cache, logits: 'last' });
      y.dataSync();
      tf.dispose([x, y]);
      ms.push(performance.now() - t);
    }
    return ms.slice(2).sort((a, b) => a - b)[Math.floor(steps / 2)];
  };
  const alone = run();
  const busy = spawn(process.execPath, ['-e', 'let x = 0; for (;;) x++;'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const contended = run();
  busy.kill('SIGKILL');
  console.log(JSON.stringify({ alone, contended }));
  cache.dispose();
  m.dispose();
  process.exit(0);
}

const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
const rows: string[] = [];
const settings: [string, NodeJS.ProcessEnv][] = [
  ['minicpmv-ts, worker pool (default: spin 50 µs)', {}],
  ['minicpmv-ts, worker pool, no spinning', { MINICPMV_SPIN_US: '0' }],
  ['minicpmv-ts, one thread', { MINICPMV_THREADS: '1' }],
];
for (const [name, env] of settings) {
  process.stderr.write(`${name} ...\n`);
  const r = spawnSync(process.execPath, [tsx, fileURLToPath(import.meta.url), '--child', '--model', model, '--steps', String(steps)],
    { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const j = line.startsWith('{') ? JSON.parse(line) : undefined;
  rows.push(j ? `| ${name} | ${j.alone.toFixed(0)} | ${j.contended.toFixed(0)} | ${(j.contended / j.alone).toFixed(2)} |` : `| ${name} | error: ${r.stderr.slice(-200)} |||`);
}
const py = path.join(root, 'reference', '.venv', 'bin', 'python');
if (fs.existsSync(py)) {
  process.stderr.write('PyTorch bf16 ...\n');
  const once = () => {
    const r = spawnSync(py, [path.join(root, 'reference', 'bench.py'), '--model', model, '--dtype', 'bf16', '--decode-only', '--steps', String(steps)],
      { cwd: root, encoding: 'utf8' });
    return JSON.parse(r.stdout.trim().split('\n').pop()!).greedyStepMs as number;
  };
  const alone = once();
  const busy = spawn(process.execPath, ['-e', 'let x = 0; for (;;) x++;'], { stdio: 'ignore' });
  const contended = once();
  busy.kill('SIGKILL');
  rows.push(`| PyTorch 2.13 bf16 (2 threads) | ${alone.toFixed(0)} | ${contended.toFixed(0)} | ${(contended / alone).toFixed(2)} |`);
}
console.log(['| setting | greedy step ms, alone | with one busy process | ratio |', '|---|---|---|---|', ...rows].join('\n'));
