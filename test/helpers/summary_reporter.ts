// Prints, after vitest's own summary, every skipped suite with the reason its name carries (see
// requires.ts), then one plain closing line, "Tests: N passed, N failed, N skipped", so any log reader
// can pick up the counts.
import path from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';

const REASON = / \[skipped: (.*)\]$/;

/** "file > suite name" of the nearest suite or test whose name says why it is skipped. */
function skipLabel(t: TestCase, file: string): string {
  for (let n: TestCase | TestCase['parent'] = t; n && n.type !== 'module'; n = n.parent) {
    if (REASON.test(n.name)) return `${file} > ${n.name.replace(REASON, '')}: ${REASON.exec(n.name)![1]}`;
  }
  return `${file} > ${t.fullName}: skipped without a stated reason`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0, failed = 0, skipped = 0;
    const reasons = new Map<string, number>();
    for (const m of modules) {
      const file = path.relative(process.cwd(), m.moduleId);
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else {
          skipped++;
          const label = skipLabel(t, file);
          reasons.set(label, (reasons.get(label) ?? 0) + 1);
        }
      }
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) failed++;
    }
    if (reasons.size) {
      process.stdout.write('\nSkipped:\n');
      for (const [label, n] of reasons) process.stdout.write(`  ${label} (${n} test${n === 1 ? '' : 's'})\n`);
    }
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
