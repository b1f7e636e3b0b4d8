// Output directories of `convert` and `random-weights`: what killed runs leave behind is cleaned by the
// next run for the same target, and the result has the user's usual permissions.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyConfigJson } from '../src/config.ts';
import { removeStaleStaging } from '../src/weights/outdir.ts';
import { writeRandomCheckpoint } from '../src/weights/random.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outdir-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const configPath = path.join(tmp, 'config.json');
fs.writeFileSync(configPath, JSON.stringify(tinyConfigJson()));

/** The id of a process that has exited (spawnSync returns after the child is reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

function mkdirWith(dir: string, file?: string): string {
  fs.mkdirSync(dir, { recursive: true });
  if (file) fs.writeFileSync(path.join(dir, file), 'partial shard');
  return dir;
}

describe('stale staging directories', () => {
  it('a later run removes the .OUT.tmp-* directories of writers that are gone, and nothing else', async () => {
    const root = path.join(tmp, 'clean');
    const out = path.join(root, 'out');
    const dead = deadPid();
    const sleeper = spawn('sleep', ['60']);
    try {
      const stale = mkdirWith(path.join(root, `.out.tmp-${dead}-abc-123456`), 'model-00001-of-00002.safetensors');
      const live = mkdirWith(path.join(root, `.out.tmp-${sleeper.pid}-abc-123456`));
      const mine = mkdirWith(path.join(root, `.out.tmp-${process.pid}-abc-123456`));
      const otherTarget = mkdirWith(path.join(root, `.other.tmp-${dead}-abc-123456`));
      const previous = mkdirWith(path.join(root, `.out.old-${dead}-abc`), 'config.json');
      fs.writeFileSync(path.join(root, `.out.tmp-${dead}-not-a-dir`), 'a file, not ours to delete');

      writeRandomCheckpoint(configPath, out, { dtype: 'bf16', seed: 1 });
      expect(fs.existsSync(stale)).toBe(false);
      for (const kept of [live, mine, otherTarget]) expect(fs.existsSync(kept), kept).toBe(true);
      // The only copy of a previous output (killed between the two renames) stays while OUT is missing...
      expect(fs.existsSync(previous)).toBe(true);
      expect(fs.existsSync(path.join(root, `.out.tmp-${dead}-not-a-dir`))).toBe(true);
      expect(fs.readdirSync(out)).toContain('model.safetensors');
      // ...and goes once OUT exists again.
      expect(removeStaleStaging(out)).toEqual([previous]);
      expect(fs.existsSync(live)).toBe(true);
    } finally {
      sleeper.kill();
    }
  });

  it('the output directory and its files get the permissions of the user\'s umask, not 0700', () => {
    for (const [umask, dirMode, fileMode] of [[0o022, 0o755, 0o644], [0o027, 0o750, 0o640]]) {
      const out = path.join(tmp, `perm-${umask.toString(8)}`);
      const old = process.umask(umask);
      try {
        writeRandomCheckpoint(configPath, out, { dtype: 'bf16', seed: 1 });
      } finally {
        process.umask(old);
      }
      expect((fs.statSync(out).mode & 0o777).toString(8)).toBe(dirMode.toString(8));
      expect((fs.statSync(path.join(out, 'model.safetensors')).mode & 0o777).toString(8)).toBe(fileMode.toString(8));
    }
  });
});
