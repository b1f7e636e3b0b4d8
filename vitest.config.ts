import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // TF.js native kernels use both cores already; files run one after another.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary_reporter.ts'],
    // Every `minicpmv` a test starts runs the TypeScript sources (bin/minicpmv.js through tsx), so a dist/
    // older than the sources cannot hide a change; test/package.test.ts runs the compiled build on purpose.
    env: { MINICPMV_FROM_SOURCE: '1' },
  },
});
