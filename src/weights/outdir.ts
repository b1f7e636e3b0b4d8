// All-or-nothing output directories: write into a temporary directory beside the target, then rename.
// A failed run leaves the target untouched and removes its temporary directory; a killed run cannot, so
// the next run for the same target removes the temporary directories whose writer process is gone.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError } from './checkpoint.ts';

/** Files a checkpoint directory may hold; `force` only ever deletes a directory made of these. */
const CHECKPOINT_FILE = /(\.safetensors|\.json|^tokenizer\.model)$/;

export interface StagedDir {
  /** The temporary directory to write into. */
  tmp: string;
  /** Replace `outDir` with the temporary directory (rename; the old contents are removed). */
  commit(): void;
  /** Remove the temporary directory (after a failure). */
  cleanup(): void;
}

/**
 * Check `outDir` and make a staging directory beside it. An existing non-empty `outDir` is refused unless
 * `isSame(outDir)` says it holds the same result, or `force` is set and it holds only checkpoint files.
 */
export function stageOutputDir(outDir: string, opts: { force?: boolean; isSame?: (dir: string) => boolean;
  what: string }): StagedDir {
  const target = path.resolve(outDir);
  if (fs.existsSync(target)) {
    if (!fs.statSync(target).isDirectory()) throw new CheckpointError(`${outDir}: output path exists and is not a directory`);
    const entries = fs.readdirSync(target);
    const foreign = entries.filter((e) => !CHECKPOINT_FILE.test(e) || !fs.statSync(path.join(target, e)).isFile());
    if (foreign.length > 0) {
      throw new CheckpointError(`${outDir}: output directory is not empty and holds files that are not checkpoint files (${foreign.slice(0, 5).join(', ')}); refusing to replace it${opts.force ? ' even with force' : ''}`);
    }
    if (entries.length > 0 && !opts.isSame?.(target)) {
      if (!opts.force) {
        throw new CheckpointError(`${outDir}: output directory already holds a different checkpoint (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', ...' : ''}); pass force to replace it with ${opts.what}`);
      }
    }
  }
  const parent = path.dirname(target);
  const madeParent = fs.mkdirSync(parent, { recursive: true }); // first directory created, if any
  removeStaleStaging(target);
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = makeStagingDir(path.join(parent, `.${path.basename(target)}.tmp-${tag}-`));
  return {
    tmp,
    commit() {
      if (fs.existsSync(target)) {
        const old = path.join(parent, `.${path.basename(target)}.old-${tag}`);
        fs.renameSync(target, old);
        fs.renameSync(tmp, target);
        fs.rmSync(old, { recursive: true, force: true });
      } else {
        fs.renameSync(tmp, target);
      }
    },
    cleanup() {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (madeParent) fs.rmSync(madeParent, { recursive: true, force: true }); // only directories this call made
    },
  };
}

/**
 * A new directory `prefix` + random suffix, with the permissions the user's umask gives any new directory
 * (mode 0777 minus umask: 0755 usually). mkdtemp would make it 0700, and the rename would hand that on.
 */
function makeStagingDir(prefix: string): string {
  for (;;) {
    const dir = prefix + randomBytes(6).toString('hex');
    try {
      fs.mkdirSync(dir, { mode: 0o777 });
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove what killed runs for this same target left beside it: `.NAME.tmp-PID-...` directories (a partial
 * checkpoint) whose PID is no longer running, and `.NAME.old-PID-...` directories (the previous output,
 * kept only until the rename) when NAME itself exists again. Only directories named by this module, for
 * this target, are touched; a live writer's directory is left alone.
 */
export function removeStaleStaging(target: string): string[] {
  const parent = path.dirname(target);
  const base = path.basename(target);
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of entries) {
    let kind: 'tmp' | 'old';
    if (name.startsWith(`.${base}.tmp-`)) kind = 'tmp';
    else if (name.startsWith(`.${base}.old-`)) kind = 'old';
    else continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(base.length + 6))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    if (kind === 'old' && !fs.existsSync(target)) continue; // the only copy of the previous output: keep it
    const full = path.join(parent, name);
    if (!fs.lstatSync(full).isDirectory()) continue;
    fs.rmSync(full, { recursive: true, force: true });
    removed.push(full);
  }
  return removed;
}
