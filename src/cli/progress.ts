// Progress for long steps: a redrawn bar on a terminal, a few plain lines
// (every 25%) when the output is a file or a pipe.
import type { CommandIO } from './command.ts';

export interface Progress {
  update(done: number, total: number, detail?: string): void;
  finish(message?: string): void;
}

export function progress(io: CommandIO, label: string, write: (s: string) => void = (s) => process.stderr.write(s)): Progress {
  const t0 = performance.now();
  let lastQuarter = -1;
  let lastDraw = 0;
  return {
    update(done, total, detail = '') {
      const frac = total > 0 ? done / total : 1;
      if (io.isTTY) {
        const now = performance.now();
        if (now - lastDraw < 80 && done < total) return;
        lastDraw = now;
        const width = 28, filled = Math.round(frac * width);
        const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
        const d = detail.length > 40 ? `…${detail.slice(-39)}` : detail;
        write(`\r${label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${d}`.padEnd(100));
      } else {
        const q = Math.floor(frac * 4);
        if (q > lastQuarter) {
          lastQuarter = q;
          io.err(`${label}: ${Math.round(frac * 100)}% (${done}/${total})`);
        }
      }
    },
    finish(message) {
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      if (io.isTTY) write('\r'.padEnd(101) + '\r');
      io.err(`${label}: done in ${secs} s${message ? `, ${message}` : ''}`);
    },
  };
}
