// One fuzzing process: runs a target over inputs FROM..TO-1 of a campaign, where inputs 0..RUNS-1 are
// generated from SEED and the rest are the given files (the regression corpus), and reports each input on
// file descriptor 3, synchronously, so the parent (campaign.ts) knows which input was running when the
// process hung, died or grew too large. Run by campaign.ts with a heap cap:
//   node --max-old-space-size=N --import tsx test/fuzz/worker.ts TARGET SEED RUNS FROM TO MAX_RSS_MIB KNOWN_OPEN [FILE...]
// Lines: "S i" before input i; "D i ms outcome" after it, outcome one of
//   ok | user <message> | crash <name>: <message> @ <frame> | blowup <peak RSS MiB>
import fs from 'node:fs';
import { UserError } from '../../src/errors.ts';
import { generateInput, removeScratch, TARGETS } from './targets.ts';

const [targetName, ...rest] = process.argv.slice(2);
const target = TARGETS[targetName];
if (!target) throw new Error(`unknown target ${targetName}`);

const report = (line: string) => fs.writeSync(3, `${line.replace(/\n/g, ' ')}\n`);

function runOne(i: number, input: Uint8Array, maxRssMiB: number): void {
  report(`S ${i}`);
  const t0 = performance.now();
  let outcome = 'ok';
  try {
    target.run(input);
  } catch (e) {
    if (e instanceof UserError) outcome = `user ${e.message.slice(0, 300)}`;
    else {
      const err = e as Error;
      const frame = /\n\s+at (.*)/.exec(String(err?.stack))?.[1] ?? '?';
      outcome = `crash ${err?.name ?? typeof e}: ${String(err?.message ?? e).slice(0, 300)} @ ${frame}`;
    }
  }
  const ms = performance.now() - t0;
  const peakMiB = process.resourceUsage().maxRSS / 1024;
  if (peakMiB > maxRssMiB) {
    report(`D ${i} ${ms.toFixed(1)} blowup ${peakMiB.toFixed(0)}`);
    removeScratch();
    process.exit(0); // the peak stays: a fresh process takes the next input
  }
  report(`D ${i} ${ms.toFixed(1)} ${outcome}`);
}

const [seed, runs, from, to, maxRss] = rest.slice(0, 5).map(Number);
const files = rest.slice(5);
for (let i = from; i < to; i++) {
  runOne(i, i < runs ? generateInput(target, seed, i) : new Uint8Array(fs.readFileSync(files[i - runs])), maxRss);
}
removeScratch();
