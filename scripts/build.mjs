// `npm run build`: compiles src/ into dist/ (tsconfig.build.json), then copies the files the compiled code
// reads next to itself (the inspect page's script and styles, src/**/assets/) to the same place under dist/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

function copyAssets(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (!e.isDirectory()) continue;
    if (e.name === 'assets') {
      const out = path.join(root, 'dist', path.relative(path.join(root, 'src'), p));
      fs.rmSync(out, { recursive: true, force: true });
      fs.cpSync(p, out, { recursive: true });
    } else {
      copyAssets(p);
    }
  }
}
copyAssets(path.join(root, 'src'));
