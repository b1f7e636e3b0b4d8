// Errors the user can cause are UserErrors (one line, exit 2); the CLI recognises them by that base class
// alone. This finds every error class in src/ and checks its ancestry, so a new one cannot slip past.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.ts';
import { repoRoot } from './helpers/paths.ts';

/** Error classes that are not the user's to fix, and why. Anything else must extend UserError. */
const NOT_USER_ERRORS: Record<string, string> = {
  ParamError: 'a parameter missing after the strict loader accepted the checkpoint is a bug in this code',
  StdoutClosed: 'not an error: the reader of stdout went away, and the command ends quietly',
  HeaderJsonError: 'internal to the safetensors header parser; parseHeader turns every one into a SafetensorsError',
  JpegStop: 'internal to the JPEG decoder; src/image/jpeg.ts turns every one into an ImageError naming the file',
  PillowOpenError: "internal to the JPEG open step; src/image/jpeg.ts turns every one into an ImageError naming the file",
  NativeOpError: "a native op's one-line refusal of its inputs (a bug of the caller); the tensor reader's, which a changed or bad file causes, the loader turns into a WeightsError naming the tensor",
  Refusal: 'internal to the PNG reader; readPng turns every one into an ImageError naming the file',
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** class name -> { parent, file } for every `class X extends Y` in src/. */
function classGraph(): Map<string, { parent: string; file: string }> {
  const graph = new Map<string, { parent: string; file: string }>();
  for (const file of sourceFiles(path.join(repoRoot, 'src'))) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/\bclass\s+(\w+)\s+extends\s+([\w.]+)/g)) {
      expect(graph.has(m[1]), `class ${m[1]} is defined twice`).toBe(false);
      graph.set(m[1], { parent: m[2], file });
    }
  }
  return graph;
}

const BUILTIN_ERRORS = new Set(['Error', 'RangeError', 'TypeError', 'SyntaxError']);

function ancestry(name: string, graph: ReturnType<typeof classGraph>): string[] {
  const chain = [name];
  for (let c = graph.get(name); c; c = graph.get(c.parent)) chain.push(c.parent);
  return chain;
}

describe('user errors by type', () => {
  const graph = classGraph();
  const errorClasses = [...graph.keys()].filter((n) => BUILTIN_ERRORS.has(ancestry(n, graph).at(-1)!));

  it('finds the error classes (the scan works)', () => {
    for (const n of ['UserError', 'ConfigError', 'SafetensorsError', 'WeightsError', 'ImageError', 'UsageError', 'TokenizerError']) {
      expect(errorClasses).toContain(n);
    }
  });

  it('every error class a user can cause extends UserError', () => {
    const wrong = errorClasses
      .filter((n) => n !== 'UserError' && !(n in NOT_USER_ERRORS))
      .filter((n) => !ancestry(n, graph).includes('UserError'))
      .map((n) => `${n} (${path.relative(repoRoot, graph.get(n)!.file)}): ${ancestry(n, graph).join(' -> ')}`);
    expect(wrong).toEqual([]);
    for (const n of Object.keys(NOT_USER_ERRORS)) expect(errorClasses, `${n} is listed but no longer exists`).toContain(n);
  });

  it('and so at run time: each exported one is an instanceof UserError', async () => {
    let checked = 0;
    for (const n of errorClasses.filter((c) => c !== 'UserError' && !(c in NOT_USER_ERRORS))) {
      const mod = await import(pathToFileURL(graph.get(n)!.file).href) as Record<string, unknown>;
      const cls = mod[n] as (new (m: string) => Error) | undefined;
      if (typeof cls !== 'function') continue; // not exported: the scan above covers it
      const e = new cls('x');
      expect(e, n).toBeInstanceOf(UserError);
      expect(e.name).toBe(n);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(15);
  });
});
