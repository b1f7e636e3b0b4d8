// Rules of the source tree that a reader relies on, checked by reading the sources:
//  - the model code runs wherever TF.js runs: src/ops, src/layers, src/model, src/tokenizer and src/parity
//    reach no Node module (directly or through what they import), except the few modules that read or
//    write files;
//  - the hook-name list is written once (src/model/hooks.ts): `trace --help` and the README show it, and
//    every activation key of the PyTorch reference's fixtures is one of its names.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { hookNames, hookSummary } from '../src/model/hooks.ts';
import { SafetensorsFile } from '../src/weights/safetensors.ts';
import { fixturesDir, repoRoot } from './helpers/paths.ts';

const NODE_FREE_DIRS = ['src/ops', 'src/layers', 'src/model', 'src/tokenizer', 'src/parity'];
/** The modules of those folders that read or write files (Node by nature). */
const FILE_IO = new Set(['src/model/load.ts', 'src/model/model_dir.ts', 'src/tokenizer/file.ts', 'src/parity/compare_files.ts', 'src/parity/trace.ts']);
const NODE_BUILTINS = new Set(builtinModules);
const NODE_ONLY_PACKAGES = [/^@tensorflow\/tfjs-node/];

/** Value imports of a module (type-only imports are erased and do not count): [specifier, line]. */
function valueImports(file: string): [string, string][] {
  const src = fs.readFileSync(path.join(repoRoot, file), 'utf8');
  const out: [string, string][] = [];
  const re = /^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)'|\bimport\(\s*'([^']+)'\s*\)|\brequire\(\s*'([^']+)'\s*\)/gm;
  for (const m of src.matchAll(re)) {
    if (m[1]) continue;
    out.push([m[2] ?? m[3] ?? m[4], m[0].trim()]);
  }
  return out;
}

function isNodeOnly(spec: string): boolean {
  return spec.startsWith('node:') || NODE_BUILTINS.has(spec) || NODE_ONLY_PACKAGES.some((r) => r.test(spec));
}

/** Every Node-only import reachable from `file` through relative value imports, with the chain that reaches it. */
function nodeImportsReachable(file: string): string[] {
  const found: string[] = [];
  const seen = new Set<string>();
  const visit = (f: string, chain: string[]) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const [spec, line] of valueImports(f)) {
      if (spec.startsWith('.')) {
        const next = path.relative(repoRoot, path.resolve(repoRoot, path.dirname(f), spec));
        if (!FILE_IO.has(next)) visit(next, [...chain, next]);
        else found.push(`${[...chain, next].join(' -> ')} (a file-I/O module)`);
      } else if (isNodeOnly(spec)) {
        found.push(`${chain.join(' -> ')}: ${line}`);
      }
    }
  };
  visit(file, [file]);
  return found;
}

describe('model code runs wherever TF.js runs', () => {
  const modules = NODE_FREE_DIRS.flatMap((d) => fs.readdirSync(path.join(repoRoot, d))
    .filter((f) => f.endsWith('.ts')).map((f) => `${d}/${f}`)).filter((f) => !FILE_IO.has(f));

  it('finds the modules to check', () => {
    expect(modules.length).toBeGreaterThan(20);
    expect(modules).toContain('src/model/minicpm_llm.ts');
  });

  it.each(modules)('%s reaches no Node module', (file) => {
    expect(nodeImportsReachable(file)).toEqual([]);
  });

  it('the checker sees a Node import where there is one', () => {
    expect(nodeImportsReachable('src/model/load.ts').some((s) => s.includes("from 'node:fs'"))).toBe(true);
    expect(nodeImportsReachable('src/backend/index.ts').length).toBeGreaterThan(0);
  });
});

describe('what src/ imports at run time is installed with the package', () => {
  it('every package a source module imports is a dependency (devDependencies are absent in an install)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const installed = new Set([pkg.name, ...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]);
    const files = (dir: string): string[] => fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? files(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : []));
    const all = files('src');
    expect(all.length).toBeGreaterThan(50);
    const missing = all.flatMap((f) => valueImports(f)
      .filter(([spec]) => !spec.startsWith('.') && !spec.startsWith('node:') && !NODE_BUILTINS.has(spec))
      .map(([spec, line]) => [f, spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0], line])
      .filter(([, name]) => !installed.has(name))
      .map(([f, name, line]) => `${f}: ${name} is not a dependency (${line})`));
    expect(missing).toEqual([]);
  });

  it('the check sees a devDependency where there is one', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies)).not.toContain('pngjs');
    expect(valueImports('test/structure.test.ts').map(([s]) => s)).toContain('vitest');
  });
});

describe('the hook-name list is written once', () => {
  it('the README shows hookSummary() verbatim', () => {
    const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    expect(readme).toContain(`\`${hookSummary()}\``);
  });

  it('trace --help prints it', async () => {
    const { command } = await import('../src/cli/commands/trace.ts');
    expect(command.details).toContain(hookSummary());
  });

  it('hookSummary names every hook of a model, and only those', () => {
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(repoRoot, 'weights', 'tiny', 'config.json'), 'utf8')));
    const expand = (item: string): string[] => {
      const m = /^(.*\{i\})\[(.*)\]$/.exec(item);
      return m ? [m[1], ...m[2].split('|').map((s) => m[1] + s)] : [item];
    };
    const patterns = new Set(hookSummary().split(', ').flatMap(expand));
    const generic = (k: string) => k.replace(/\.(\d+)(?=\.|$)/, '.{i}');
    expect(new Set(hookNames(cfg).map(generic))).toEqual(patterns);
  });

  it('every activation key of the PyTorch reference\'s fixtures is a hook name', () => {
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(repoRoot, 'weights', 'tiny', 'config.json'), 'utf8')));
    const names = new Set(hookNames(cfg));
    const generation = /^(greedy|beam|sample)\.|^image_bound$|^logits\.positions$/;
    const dir = path.join(fixturesDir, 'tiny', 'cases');
    for (const file of fs.readdirSync(dir)) {
      const f = SafetensorsFile.open(path.join(dir, file));
      const unknown = f.keys().filter((k) => !generation.test(k) && !names.has(k));
      f.close();
      expect([file, unknown]).toEqual([file, []]);
    }
  });
});
