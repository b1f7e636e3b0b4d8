// Image decode speed against Pillow, measured in the same run: `npm run bench:images` (about a minute).
// Files: the JPEGs of ../shared/jpeg that Pillow opens and their PNG renderings when ../shared is there,
// else the committed fixtures (test/fixtures/images) and examples/. For each format and round: a pure read
// of the files (the floor), this project's decodeImage, and Pillow's Image.open(BytesIO(b)).convert('RGB')
// through reference/.venv/bin/python on the same bytes (skipped with a note when the venv is absent).
// Rounds alternate between the two decoders, each timing a pass right after an untimed one (the same
// warm-up on both sides: idle time between rounds otherwise costs the next round page faults); the report gives medians of wall time and of CPU time
// (process.cpuUsage / time.process_time: on a shared machine the CPU time is the steadier figure) and
// the ratios (ours / Pillow).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage } from '../src/image/decode.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const corpus = path.resolve(repo, '..', 'shared', 'jpeg');
const python = path.join(repo, 'reference', '.venv', 'bin', 'python');
const ROUNDS = Number(process.env.ROUNDS ?? 7);

function fileSets(): { name: string; files: string[] }[] {
  if (fs.existsSync(path.join(corpus, 'manifest.json'))) {
    const entries: { file: string; pillow: string; expected?: string }[] = JSON.parse(fs.readFileSync(path.join(corpus, 'manifest.json'), 'utf8')).images;
    const ok = entries.filter((e) => e.pillow === 'ok');
    return [
      { name: `JPEG (../shared/jpeg, ${ok.length} files Pillow opens)`, files: ok.map((e) => path.join(corpus, e.file)) },
      { name: `PNG (their ${ok.length} Pillow renderings)`, files: ok.map((e) => path.join(corpus, e.expected!)) },
    ];
  }
  const dirs = [path.join(repo, 'test', 'fixtures', 'images'), path.join(repo, 'examples')];
  const all = dirs.flatMap((d) => fs.readdirSync(d).map((f) => path.join(d, f)));
  return [
    { name: 'JPEG (fixtures + examples; ../shared/jpeg absent)', files: all.filter((f) => f.endsWith('.jpg')) },
    { name: 'PNG (fixtures + examples)', files: all.filter((f) => f.endsWith('.png')) },
  ];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Pillow side: one process per round, timing only the loop (the interpreter start is excluded).
const PILLOW = `
import io, sys, time, json
from PIL import Image
paths = json.loads(sys.stdin.read())
data = [open(p, 'rb').read() for p in paths]
for b in data: Image.open(io.BytesIO(b)).convert('RGB')  # warm-up
t, c = time.perf_counter(), time.process_time()
for b in data: Image.open(io.BytesIO(b)).convert('RGB')
print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
`;
interface Ms { wall: number; cpu: number }
function pillowMs(files: string[]): Ms | null {
  if (!fs.existsSync(python)) return null;
  const r = spawnSync(python, ['-c', PILLOW], { input: JSON.stringify(files), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`Pillow run failed: ${r.stderr}`);
  const [wall, cpu] = r.stdout.trim().split(' ').map(Number);
  return { wall, cpu };
}

/** Like the Pillow script: one untimed pass right before the timed one (after the idle wait for Pillow). */
function oursMs(bytes: Uint8Array[]): Ms {
  for (const b of bytes) decodeImage(b, 'bench');
  const t = performance.now(), c = process.cpuUsage();
  for (const b of bytes) decodeImage(b, 'bench');
  const u = process.cpuUsage(c);
  return { wall: performance.now() - t, cpu: (u.user + u.system) / 1000 };
}

function readMs(files: string[]): number {
  const t = performance.now();
  for (const f of files) fs.readFileSync(f);
  return performance.now() - t;
}

console.log(`image decode, ${ROUNDS} rounds, Node ${process.version}${fs.existsSync(python) ? ', Pillow via reference/.venv' : ', Pillow: reference/.venv absent, not measured'}`);
console.log('| files | MB | pure read | minicpmv-ts decodeImage: wall / CPU | Pillow open + convert("RGB"): wall / CPU | ours / Pillow: wall / CPU |');
console.log('|---|---|---|---|---|---|');
for (const set of fileSets()) {
  const bytes = set.files.map((f) => new Uint8Array(fs.readFileSync(f)));
  const mb = bytes.reduce((n, b) => n + b.length, 0) / 1e6;
  for (let i = 0; i < 3; i++) oursMs(bytes); // warm-up (JIT)
  const ours: Ms[] = [], pil: Ms[] = [], read: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    read.push(readMs(set.files));
    ours.push(oursMs(bytes));
    const p = pillowMs(set.files);
    if (p) pil.push(p);
  }
  const ow = median(ours.map((m) => m.wall)), oc = median(ours.map((m) => m.cpu));
  const pw = pil.length ? median(pil.map((m) => m.wall)) : NaN, pc = pil.length ? median(pil.map((m) => m.cpu)) : NaN;
  const f = (x: number) => `${x.toFixed(1)} ms`;
  console.log(`| ${set.name} | ${mb.toFixed(2)} | ${f(median(read))} | ${f(ow)} / ${f(oc)} | ${pil.length ? `${f(pw)} / ${f(pc)}` : 'n/a'} | ${pil.length ? `${(ow / pw).toFixed(2)} / ${(oc / pc).toFixed(2)}` : 'n/a'} |`);
}
