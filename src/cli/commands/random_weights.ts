// `minicpmv random-weights`: a seeded random checkpoint in the HF layout, for benchmarks and load tests.
import { bool, parseArgs, num, str, UsageError, type FlagSpecs } from '../args.ts';
import type { Command } from '../command.ts';
import { readFileText } from '../common.ts';
import { progress } from '../progress.ts';
import { writeRandomCheckpoint } from '../../weights/random.ts';

const flags: FlagSpecs = {
  config: { type: 'string', metavar: 'config.json', help: 'model config (the real one gives the full 3.4B model)' },
  out: { type: 'string', metavar: 'DIR', help: 'output directory' },
  dtype: { type: 'string', choices: ['bf16', 'f16', 'f32'], default: 'bf16', help: 'stored dtype' },
  seed: { type: 'int', metavar: 'N', default: 0, help: 'random seed' },
  force: { type: 'boolean', help: 'replace an output directory that holds checkpoint files' },
};

export const command: Command = {
  name: 'random-weights',
  summary: 'write a random checkpoint for a config',
  usage: '--config config.json --out DIR [--dtype bf16|f16|f32] [--seed N] [--force]',
  flags,
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const config = str(p, 'config'), out = str(p, 'out');
    if (!config || !out) throw new UsageError('--config and --out are required');
    readFileText(config, '--config');
    const bar = progress(io, 'writing random weights');
    const r = writeRandomCheckpoint(config, out, {
      dtype: str(p, 'dtype') as 'bf16' | 'f16' | 'f32', seed: num(p, 'seed')!, force: bool(p, 'force'), onProgress: (d, t, k) => bar.update(d, t, k),
    });
    bar.finish(`${r.tensors} tensors, ${(r.totalBytes / 1e9).toFixed(2)} GB in ${r.files.length} files`);
    return 0;
  },
};
