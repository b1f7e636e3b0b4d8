// All-or-nothing output directories: write into a temporary directory beside the target, then rename.
// A failed or interrupted run leaves the target untouched and removes its temporary directory.
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
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.tmp-${tag}-`));
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
