// The README's library example runs as written (examples/library.ts), on the cpu backend.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { repoRoot } from './helpers/paths.ts';

it('examples/library.ts chats twice and prints the decoder layers it hooked', () => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const example = fs.readFileSync(path.join(repoRoot, 'examples', 'library.ts'), 'utf8');
  expect(readme).toContain(example.trim()); // the README shows this very file
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(repoRoot, 'examples', 'library.ts')],
    { encoding: 'utf8', env: { ...process.env, MINICPMV_BACKEND: 'cpu' } });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^backend: cpu/m);
  expect(r.stdout).toMatch(/8 tokens, prefill \d+ tok\/s/);
  expect(r.stdout).toMatch(/llm\.model\.layers\.0 \[ 1, 81, 128 \]/);
  expect(r.stdout).toMatch(/llm\.model\.layers\.1 \[ 1, 81, 128 \]/);
});
