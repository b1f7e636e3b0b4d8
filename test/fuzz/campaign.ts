// The fuzz campaign driver (docs/fuzzing.md): runs each target's inputs in worker processes with a heap cap,
// watches each input for time (a hang) and the process for memory (a blow-up), restarts a worker after it
// dies, and reports per target: inputs, passes, user errors, crashes, hangs, blow-ups, time, peak RSS.
// Found inputs are written under --out (one .bin per finding, with a .txt saying what happened).
//
//   npm run fuzz -- --runs 10000                  every target, 10,000 inputs each
//   npm run fuzz -- --targets png,jpeg --seed 7   some targets, another seed
//   npm run fuzz -- --corpus                      replay the regression corpus only
// The regression corpus (test/fuzz/corpus/TARGET/) runs after the generated inputs in every run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CAMPAIGN_TARGETS, generateInput, scratchDirOf, TARGETS } from './targets.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CORPUS_DIR = path.join(here, 'corpus');

export interface CampaignOptions {
  /** Inputs per target (generated mode). */
  runs: number;
  seed: number;
  /**
   * An input using more than this much CPU time is a hang (default 10 s); so is one running 10 times as long
   * in wall time (a blocking wait uses no CPU). CPU time, not wall time, so a loaded machine makes no hangs.
   */
  hangMs: number;
  /** A process whose resident memory passes this is a blow-up (default 1.5 GiB). */
  maxRssMiB: number;
  /** Where found inputs go; undefined: keep none. */
  outDir?: string;
  /** Called with progress lines. */
  log?: (line: string) => void;
}

export interface Finding { kind: 'crash' | 'hang' | 'blowup'; index: number; input: string; detail: string; file?: string }

export interface TargetReport {
  target: string;
  inputs: number;
  ok: number;
  userErrors: number;
  crashes: number;
  hangs: number;
  blowups: number;
  seconds: number;
  slowestMs: number;
  /** Which input took slowestMs. */
  slowestInput: string;
  peakRssMiB: number;
  workers: number;
  findings: Finding[];
}

const DEFAULTS: CampaignOptions = { runs: 1000, seed: 1, hangMs: 10_000, maxRssMiB: 1536 };

/** CPU time (user + system) of a process in ms, from /proc (clock ticks of 10 ms on Linux). */
function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on: state is f[0]
    return (Number(f[11]) + Number(f[12])) * 10; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Run one worker over inputs [from, to); resolves with how it ended (the caller tracks the last input) and
 * why. Heap capped a little above the RSS limit, so V8 fails late rather than first.
 */
function runWorker(target: string, args: string[], o: CampaignOptions, onLine: (line: string) => void):
  Promise<{ code: number | null; signal: string | null; killed?: 'hang' | 'blowup'; stderr: string; peak: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${o.maxRssMiB + 256}`, '--import', 'tsx',
      path.join(here, 'worker.ts'), target, ...args], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let buf = '';
    let killed: 'hang' | 'blowup' | undefined;
    let started = 0; // wall time the running input began (0: none running)
    let startedCpu = 0;
    let peak = 0;
    child.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        started = line.startsWith('S ') ? Date.now() : 0;
        if (started) startedCpu = cpuMs(child.pid!);
        onLine(line);
      }
    });
    const watch = setInterval(() => {
      const rss = rssMiB(child.pid!);
      peak = Math.max(peak, rss);
      if (!killed && rss > o.maxRssMiB) killed = 'blowup';
      else if (!killed && started && (cpuMs(child.pid!) - startedCpu > o.hangMs || Date.now() - started > 10 * o.hangMs)) killed = 'hang';
      if (killed) child.kill('SIGKILL');
    }, 25);
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      fs.rmSync(scratchDirOf(child.pid!), { recursive: true, force: true }); // a killed worker cannot
      resolve({ code, signal, killed, stderr, peak });
    });
  });
}

function save(o: CampaignOptions, target: string, f: Finding, input: Uint8Array): Finding {
  if (!o.outDir) return f;
  const dir = path.join(o.outDir, target);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${f.kind}-seed${o.seed}-${f.index}.bin`);
  fs.writeFileSync(file, input);
  fs.writeFileSync(file.replace(/\.bin$/, '.txt'), `${target} ${f.kind} (seed ${o.seed}, ${f.input}): ${f.detail}\n`);
  return { ...f, file };
}

/** One target: `runs` generated inputs, then `files` (the regression corpus) as inputs runs, runs+1, ... */
export async function fuzzTarget(target: string, options: Partial<CampaignOptions> = {}, files: string[] = []): Promise<TargetReport> {
  const o = { ...DEFAULTS, ...options };
  if (!TARGETS[target]) throw new Error(`unknown target "${target}"; targets: ${Object.keys(TARGETS).join(', ')}`);
  const total = o.runs + files.length;
  const r: TargetReport = { target, inputs: 0, ok: 0, userErrors: 0, crashes: 0, hangs: 0, blowups: 0, seconds: 0, slowestMs: 0, slowestInput: '',
    peakRssMiB: 0, workers: 0, findings: [] };
  const inputOf = (i: number) => (i < o.runs ? generateInput(TARGETS[target], o.seed, i) : new Uint8Array(fs.readFileSync(files[i - o.runs])));
  const name = (i: number) => (i < o.runs ? `input ${i}` : `corpus ${path.basename(files[i - o.runs])}`);
  const t0 = performance.now();
  let next = 0;
  let lastLog = Date.now();
  while (next < total) {
    let running = -1;
    const from = next;
    const args = [o.seed, o.runs, from, total, o.maxRssMiB].map(String).concat(files);
    r.workers++;
    const w = await runWorker(target, args, o, (line) => {
      const [tag, idx, ms, outcome, ...more] = line.split(' ');
      const i = Number(idx);
      if (tag === 'S') {
        running = i;
        return;
      }
      running = -1;
      next = i + 1;
      r.inputs++;
      if (Number(ms) > r.slowestMs) {
        r.slowestMs = Number(ms);
        r.slowestInput = name(i);
      }
      if (outcome === 'ok') r.ok++;
      else if (outcome === 'user') r.userErrors++;
      else if (outcome === 'crash') {
        r.crashes++;
        r.findings.push(save(o, target, { kind: 'crash', index: i, input: name(i), detail: more.join(' ') }, inputOf(i)));
      } else if (outcome === 'blowup') {
        r.blowups++;
        r.findings.push(save(o, target, { kind: 'blowup', index: i, input: name(i), detail: `peak RSS ${more[0]} MiB` }, inputOf(i)));
      }
      if (o.log && Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        o.log(`${target}: ${r.inputs}/${total} inputs, ${r.crashes} crashes, ${r.hangs} hangs, ${r.blowups} blow-ups`);
      }
    });
    r.peakRssMiB = Math.max(r.peakRssMiB, w.peak);
    if (running >= 0) { // the worker stopped inside an input
      const kind = w.killed === 'hang' ? 'hang' : w.killed === 'blowup' || /heap out of memory|allocation failed/i.test(w.stderr) ? 'blowup' : 'crash';
      const detail = kind === 'hang' ? `still running after ${o.hangMs} ms of CPU time`
        : kind === 'blowup' ? `resident memory past ${o.maxRssMiB} MiB (killed)`
          : `process died: exit ${w.code} signal ${w.signal}: ${w.stderr.trim().split('\n').slice(-3).join(' | ')}`;
      r.inputs++;
      r[kind === 'hang' ? 'hangs' : kind === 'blowup' ? 'blowups' : 'crashes']++;
      r.findings.push(save(o, target, { kind, index: running, input: name(running), detail }, inputOf(running)));
      next = running + 1;
    } else if (next === from && w.code !== 0) {
      throw new Error(`fuzz worker for ${target} failed to start (exit ${w.code}): ${w.stderr.trim().split('\n').slice(-5).join(' | ')}`);
    }
  }
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}

/** Every corpus file of a target (test/fuzz/corpus/TARGET/*), sorted. */
export function corpusFiles(target: string): string[] {
  const dir = path.join(CORPUS_DIR, target);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => !f.endsWith('.txt') && !f.endsWith('.md')).sort().map((f) => path.join(dir, f));
}

export function formatReport(r: TargetReport): string {
  return `${r.target.padEnd(12)} ${String(r.inputs).padStart(7)} inputs  ${String(r.ok).padStart(6)} ok  ${String(r.userErrors).padStart(6)} user errors  ` +
    `${r.crashes} crashes  ${r.hangs} hangs  ${r.blowups} blow-ups  ${r.seconds.toFixed(0)} s  slowest ${r.slowestMs.toFixed(0)} ms (${r.slowestInput})  ` +
    `peak RSS ${r.peakRssMiB.toFixed(0)} MiB  ${r.workers} worker(s)`;
}

async function cli(argv: string[]): Promise<number> {
  const opt = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const targets = (opt('targets') ?? CAMPAIGN_TARGETS.join(',')).split(',');
  const corpusOnly = argv.includes('--corpus');
  const outDir = opt('out') ?? path.join(os.tmpdir(), `minicpmv-fuzz-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const o: Partial<CampaignOptions> = {
    runs: Number(opt('runs') ?? 1000), seed: Number(opt('seed') ?? 1), hangMs: Number(opt('hang-ms') ?? 10_000),
    maxRssMiB: Number(opt('max-rss-mib') ?? 1536), outDir, log: (l) => console.error(l),
  };
  console.log(corpusOnly ? 'replaying the regression corpus (test/fuzz/corpus)' :
    `fuzz campaign: ${o.runs} generated inputs per target (seed ${o.seed}) after the regression corpus; hang > ${o.hangMs} ms, ` +
    `blow-up > ${o.maxRssMiB} MiB; findings -> ${outDir}`);
  let bad = 0;
  for (const t of targets) {
    const r = await fuzzTarget(t, corpusOnly ? { ...o, runs: 0 } : o, corpusFiles(t));
    console.log(formatReport(r));
    for (const f of r.findings) console.log(`  ${f.kind} ${f.input}: ${f.detail}${f.file ? ` (${f.file})` : ''}`);
    bad += r.crashes + r.hangs + r.blowups;
  }
  return bad ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  void cli(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
