// minicpmv-ts as another project gets it: what the tarball holds, the package importing from plain Node
// through its exports map, and (under CI, where a clean install is cheap to repeat) the tarball installed
// into an empty project: importable from ESM, type-checked by tsc, its bin working, and a clear way back
// when the install scripts did not run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/paths.ts';
import { ci, named, requirement, unmet } from './helpers/requires.ts';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
const built = requirement(fs.existsSync(path.join(repoRoot, 'dist', 'index.js')), 'dist/ is not built (npm run build; npm install does it)');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-package-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// The compiled build, as users run it (the suite's MINICPMV_FROM_SOURCE would send the bin to tsx).
const env = { ...process.env, MINICPMV_FROM_SOURCE: '', npm_config_audit: 'false', npm_config_fund: 'false' };
const npm = (args: string[], cwd: string, timeout = 600_000) => spawnSync('npm', args, { cwd, encoding: 'utf8', timeout, env });

describe('the package', () => {
  it('exports its compiled entry and types, and runs its bin from dist/', () => {
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js' });
    expect(pkg.bin.minicpmv).toBe('bin/minicpmv.js');
    expect(fs.readFileSync(path.join(repoRoot, 'bin', 'minicpmv.js'), 'utf8')).toContain('../dist/cli/main.js');
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.bundleDependencies).toEqual(['minicpmv-native-setup']);
    expect(pkg.dependencies.tsx).toBeUndefined(); // the bin runs compiled code; tsx is for development only
  });

  it.skipIf(unmet(built))(named('the tarball holds the build, the bundled model, the native sources and the setup, and no tests', built), () => {
    const r = npm(['pack', '--dry-run', '--json', '--ignore-scripts'], repoRoot);
    expect(r.status, r.stderr).toBe(0);
    const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/minicpmv.js', 'weights/tiny/model.safetensors',
      'weights/tiny/tokenizer.model', 'native/minicpmv_ops.cc', 'native/quiet.cc', 'native/binding.gyp', 'scripts/build-ops.mjs',
      'examples/red_ball.png', 'node_modules/minicpmv-native-setup/setup.cjs', 'README.md', 'dist/inspect/assets/inspect.js']) expect(files, f).toContain(f);
    expect(files.filter((f) => /^(test|reference|bench)\//.test(f))).toEqual([]);
  });

  it.skipIf(unmet(built))(named('plain Node imports it by name (no tsx): the library surface is there', built), () => {
    const script = "import('minicpmv-ts').then((m) => console.log(JSON.stringify(['loadModel', 'loadTokenizer', 'ChatSession', " +
      "'Hooks', 'compareFiles', 'initBackend', 'UserError', 'BUNDLED_MODEL_DIR'].map((k) => typeof m[k]))))";
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(['function', 'function', 'function', 'function', 'function', 'function', 'function', 'string']);
  });
});

const CONSUMER_TS = `import { BUNDLED_MODEL_DIR, ChatSession, initBackend, loadImage, loadModel, loadTokenizer, type ChatReply } from 'minicpmv-ts';

await initBackend();
const model = loadModel(BUNDLED_MODEL_DIR);
const image = loadImage(new URL('./node_modules/minicpmv-ts/examples/red_ball.png', import.meta.url).pathname);
const session = new ChatSession(model, loadTokenizer(BUNDLED_MODEL_DIR), image);
const reply: ChatReply = session.ask('What is in the image?', { mode: 'greedy', maxNewTokens: 3 });
console.log(JSON.stringify({ tokens: reply.tokens.length }));
session.dispose();
model.dispose();
`;

const inCi = ci();
describe.skipIf(unmet(inCi, built))(named('installed from its tarball into an empty project', inCi, built), () => {
  let tarball = '';
  const project = (name: string) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
    return dir;
  };

  it('npm pack makes it', () => {
    const r = npm(['pack', '--pack-destination', tmp, '--ignore-scripts'], repoRoot);
    expect(r.status, r.stderr).toBe(0);
    tarball = path.join(tmp, r.stdout.trim().split('\n').pop()!);
    expect(fs.existsSync(tarball)).toBe(true);
  });

  it('installs with its scripts, imports from ESM, type-checks with tsc (nodenext) and runs its bin', () => {
    const dir = project('consumer');
    const r = npm(['install', '--prefer-offline', tarball], dir);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const imp = spawnSync(process.execPath, ['--input-type=module', '-e', "import('minicpmv-ts').then((m) => console.log(typeof m.loadModel))"],
      { cwd: dir, encoding: 'utf8', env });
    expect(imp.stdout.trim(), imp.stderr).toBe('function');
    fs.writeFileSync(path.join(dir, 'main.ts'), CONSUMER_TS);
    // TF.js's own declarations need skipLibCheck (as for any TF.js user); this package's must type-check.
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['main.ts'],
    }));
    const tsc = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const help = spawnSync(path.join(dir, 'node_modules', '.bin', 'minicpmv'), ['--help'], { cwd: dir, encoding: 'utf8', env });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^minicpmv: MiniCPM-V v1/);
    const chat = spawnSync(path.join(dir, 'node_modules', '.bin', 'minicpmv'),
      ['chat', '--image', path.join(repoRoot, 'examples', 'red_ball.png'), '-p', 'Hi', '--decode', 'greedy', '-n', '2', '--json'], { cwd: dir, encoding: 'utf8', env });
    expect(chat.status, chat.stderr).toBe(0);
    expect(JSON.parse(chat.stdout).backend.name).toBe('tensorflow');
    expect(chat.stderr).not.toMatch(/absl|oneDNN/); // TensorFlow's load banner stays quiet without --verbose
  });

  it('without its install scripts it still runs on cpu and says in one line how to get the native backend', () => {
    const dir = project('no-scripts');
    const r = npm(['install', '--prefer-offline', '--ignore-scripts', tarball], dir);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const info = spawnSync(path.join(dir, 'node_modules', '.bin', 'minicpmv'), ['info'], { cwd: dir, encoding: 'utf8', env });
    expect(info.status, info.stderr).toBe(0);
    const line = info.stdout.split('\n').find((l) => l.startsWith('backend:'))!;
    expect(line).toMatch(/^backend: cpu \(native tensorflow backend not used: .*not built.*run `npm rebuild`/);
  });
});
