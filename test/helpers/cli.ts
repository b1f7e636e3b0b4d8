// Running the `minicpmv` command from tests: in a child process as a user runs it (on the TypeScript
// sources, so a stale dist/ cannot hide a change), or in-process through main() to capture its output.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { main } from '../../src/cli/main.ts';
import type { CommandIO } from '../../src/cli/command.ts';
import { repoRoot } from './paths.ts';

export const bin = path.join(repoRoot, 'bin', 'minicpmv.js');

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** `minicpmv ...args` in a child process (cpu backend unless `env` says otherwise). */
export function cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8', input: opts.input, env: { ...process.env, MINICPMV_BACKEND: 'cpu', MINICPMV_FROM_SOURCE: '1', ...opts.env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** main(argv) in this process, with what it writes to stdout and stderr. */
export async function runMain(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CommandIO = { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}
