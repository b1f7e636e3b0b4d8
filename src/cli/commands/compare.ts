// `minicpmv compare A B`: key-by-key comparison of two activation files (src/parity/compare.ts).
// Exit code 0 when every compared key passes, 1 when some key fails (or, with --strict, a key is in one
// file only), 2 for bad input.
import fs from 'node:fs';
import { UsageError, bool, list, num, parseArgs, str } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import type { KeyResult } from '../../parity/compare.ts';
import { compareFiles, type CompareResult } from '../../parity/compare_files.ts';
import { formatNumber, formatShape, resultToJson } from '../../parity/format.ts';
import { renderHtml } from '../../parity/report_html.ts';

const flags = {
  rtol: { type: 'number', help: 'relative tolerance for every float key (default: per stage, docs/tolerances.md)', metavar: 'R' },
  atol: { type: 'number', help: 'absolute tolerance for every float key (default: per stage)', metavar: 'A' },
  keys: { type: 'list', help: 'comma-separated key globs: * one dotted segment, ** any number, !glob excludes', metavar: 'GLOBS' },
  json: { type: 'boolean', help: 'print the full structured result as JSON instead of the table' },
  html: { type: 'string', help: 'also write a self-contained HTML report to this file', metavar: 'FILE' },
  strict: { type: 'boolean', help: 'fail when a key is present in one file only' },
} as const;

function table(result: CompareResult): string[] {
  const rows = result.results.map((r) => [
    r.key, formatShape(r), formatNumber(r.maxAbs), formatNumber(r.maxRel), formatNumber(r.nmseDb),
    formatNumber(r.cosMin, 6), r.status,
  ]);
  const head = ['key', 'shape', 'max abs', 'max rel', 'NMSE dB', 'cos min', 'result'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((s, c) => (c === 0 || c === 1 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

function describeFailure(r: KeyResult): string[] {
  const out = [`first failing key (model order): ${r.key}  ${r.status}`];
  if (r.tol) out.push(`  tolerance ${r.tol.stage}: rtol=${r.tol.rtol} atol=${r.tol.atol}; ${r.violations} of ${r.count} elements outside`);
  else if (r.kind === 'int') out.push(`  integer key, exact match required; ${r.violations} of ${r.count} elements differ`);
  if (r.nanA + r.infA + r.nanB + r.infB > 0) out.push(`  non-finite: A ${r.nanA} NaN ${r.infA} Inf; B ${r.nanB} NaN ${r.infB} Inf`);
  for (const n of r.notes) out.push(`  ${n}`);
  if (r.top.length > 0) out.push(r.kind === 'int' ? '  first differences (index: actual vs expected):' : '  largest differences (index: actual vs expected, |diff|):');
  for (const d of r.top) out.push(`    [${d.index.join(', ')}]: ${formatNumber(d.actual, 9)} vs ${formatNumber(d.expected, 9)}${r.kind === 'int' ? '' : `  (${formatNumber(d.absDiff)})`}`);
  return out;
}

function summary(result: CompareResult): string {
  const only = `only in A: ${result.onlyInA.length}, only in B: ${result.onlyInB.length}${result.strict ? ' (--strict)' : ''}`;
  return `${result.compared} keys compared: ${result.passed} PASS, ${result.failed} FAIL; ${only} -> ${result.ok ? 'OK' : 'FAILED'}`;
}

async function run(argv: string[], io: CommandIO): Promise<number> {
  const p = parseArgs(argv, flags, 2);
  if (p.positionals.length !== 2) throw new UsageError(`expected two files A (actual) and B (expected), got ${p.positionals.length}`);
  const [a, b] = p.positionals;
  const keys = list(p, 'keys');
  const result = compareFiles(a, b, { rtol: num(p, 'rtol'), atol: num(p, 'atol'), keys, strict: bool(p, 'strict') });
  const html = str(p, 'html');
  if (html !== undefined) {
    try {
      fs.writeFileSync(html, renderHtml(result));
    } catch (e) {
      throw new UsageError(`--html ${html}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (bool(p, 'json')) {
    io.out(resultToJson(result));
  } else {
    io.out([`A (actual):   ${a}`, `B (expected): ${b}`, `policy: ${result.policy}`, ''].join('\n'));
    io.out(table(result).join('\n'));
    if (result.onlyInA.length > 0) io.out(`only in A (${result.onlyInA.length}): ${result.onlyInA.join(', ')}`);
    if (result.onlyInB.length > 0) io.out(`only in B (${result.onlyInB.length}): ${result.onlyInB.join(', ')}`);
    if (result.compared === 0) io.out('no key is present in both files: nothing was compared');
    io.out(summary(result));
    const first = result.results.find((r) => r.key === result.firstFailure);
    if (first) io.out(describeFailure(first).join('\n'));
  }
  if (html !== undefined) io.err(`wrote ${html}`);
  return result.ok ? 0 : 1;
}

export const command: Command = {
  name: 'compare',
  summary: 'compare two activation files key by key (A = actual, B = expected reference)',
  usage: 'A.safetensors B.safetensors [--rtol R --atol A] [--keys GLOBS] [--json] [--html report.html] [--strict]',
  flags,
  maxPositionals: 2,
  details: [
    'Keys are PyTorch module paths (vpm.blocks.3, llm.model.layers.0.mlp, logits, ...), listed in model order.',
    'An element passes when |a-e| <= atol + rtol*|e|; per-stage defaults are in docs/tolerances.md.',
    'Integer keys (input_ids, *.ids) must match exactly; NaN or Inf on either side fails the key.',
    'max rel = max |a-e| / (|e| + atol/rtol), so a key passes exactly when max rel <= rtol.',
    'Exit code: 0 all compared keys pass, 1 some fail (or --strict and a key is in one file only), 2 bad input.',
    '',
    'examples:',
    '  minicpmv compare trace.safetensors golden.safetensors',
    "  minicpmv compare ours.safetensors torch.safetensors --keys 'vpm.blocks.*,llm.model.layers.*' --html report.html",
  ].join('\n'),
  run,
};
