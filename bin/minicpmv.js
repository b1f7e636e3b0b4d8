#!/usr/bin/env node
// Entry point of the `minicpmv` command: runs the compiled JavaScript in dist/ (npm builds it on install
// from a git checkout and on pack). Where dist/ was not built, or with MINICPMV_FROM_SOURCE=1 (the tests
// set it), the TypeScript sources run through tsx (a devDependency) instead.
import fs from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let main;
if (process.env.MINICPMV_FROM_SOURCE !== '1' && fs.existsSync(dist)) {
  ({ main } = await import(dist.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
