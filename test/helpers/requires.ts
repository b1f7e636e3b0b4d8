// What a suite needs beyond a clone of the repository, and why it is skipped without it. A suite that
// cannot run says so in its name (`named(...)`), and the summary reporter lists every skipped suite with
// that reason at the end of the run. Nothing here reads optional data: each check looks for a file or
// starts a program, and a missing one only makes the requirement unmet.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { hasShared, repoRoot } from './paths.ts';

export interface Requirement {
  readonly ok: boolean;
  /** What is missing, in one line (shown when `ok` is false). */
  readonly missing: string;
}

export const requirement = (ok: boolean, missing: string): Requirement => ({ ok, missing });

/** A file or folder of ../shared (the golden data, the real tokenizer and config, the JPEG corpus). */
export function shared(...parts: string[]): Requirement {
  return requirement(hasShared(...parts), `../shared/${parts.join('/')} is absent (it sits beside the project in CI only)`);
}

let torch: Requirement | undefined;
/** reference/.venv with torch, timm (torchvision stub), safetensors, sentencepiece and Pillow importable. */
export function pytorchReference(): Requirement {
  if (torch) return torch;
  const python = path.join(repoRoot, 'reference', '.venv', 'bin', 'python');
  if (!fs.existsSync(python)) return (torch = requirement(false, 'reference/.venv is absent (see reference/README.md; .ci/run makes it)'));
  const r = spawnSync(python, ['-c', 'import sys; sys.path.insert(0, "reference"); import minicpmv_ref as r; r.import_timm(); '
    + 'import safetensors, sentencepiece, PIL'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  return (torch = requirement(r.status === 0, `reference/.venv cannot import the PyTorch reference (${(r.stderr ?? '').trim().split('\n').pop()})`));
}

/** A Chromium binary in /usr/bin or on PATH (Debian's `chromium`; .ci/run installs it), or undefined. */
export function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    for (const dir of ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter)]) {
      const p = path.join(dir, name);
      if (dir && fs.existsSync(p)) return p;
    }
  }
  return undefined;
}

export function chromium(): Requirement {
  return requirement(findChromium() !== undefined, 'no Chromium in /usr/bin or on PATH (apt-get install chromium; .ci/run does)');
}

/** Under CI (CI=true) only: checks that CI's machine has what the project promises there. */
export function ci(): Requirement {
  return requirement(process.env.CI === 'true', 'checked only under CI=true');
}

/** True when any requirement is unmet: `describe.skipIf(unmet(a, b))(named('suite', a, b), ...)`. */
export function unmet(...reqs: Requirement[]): boolean {
  return reqs.some((r) => !r.ok);
}

/** The suite's or test's name, with why it is skipped appended when a requirement is unmet. */
export function named(name: string, ...reqs: Requirement[]): string {
  const missing = reqs.filter((r) => !r.ok).map((r) => r.missing);
  return missing.length ? `${name} [skipped: ${missing.join('; ')}]` : name;
}
