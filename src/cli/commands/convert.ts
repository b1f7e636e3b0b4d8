// `minicpmv convert <hf_dir> <out_dir>`: validate an HF checkpoint and write the project's layout.
import { bool, parseArgs, str, UsageError, type FlagSpecs } from '../args.ts';
import type { Command } from '../command.ts';
import { progress } from '../progress.ts';
import { convertCheckpoint, type ConvertDtype } from '../../weights/convert.ts';

const flags: FlagSpecs = {
  dtype: { type: 'string', choices: ['f32', 'f16', 'bf16'], default: 'f32', help: 'stored dtype of the output' },
  force: { type: 'boolean', help: 'replace an output directory that holds a different checkpoint' },
};

export const command: Command = {
  name: 'convert',
  summary: 'convert an HF checkpoint to the project layout',
  usage: '<hf_dir> <out_dir> [--dtype f32|f16|bf16] [--force]',
  flags,
  maxPositionals: 2,
  details: 'The output holds vision.safetensors, resampler.safetensors, llm*.safetensors, config and tokenizer files,\n' +
    'and minicpmv-manifest.json with sha256 checksums (docs/weights.md).',
  async run(argv, io) {
    const p = parseArgs(argv, flags, 2);
    if (p.positionals.length !== 2) throw new UsageError('expected <hf_dir> <out_dir>');
    const [src, out] = p.positionals;
    const bar = progress(io, 'converting');
    const r = convertCheckpoint(src, out, {
      dtype: str(p, 'dtype') as ConvertDtype, force: bool(p, 'force'), onProgress: (d, t, k) => bar.update(d, t, k),
    });
    bar.finish(`${r.manifest.files.length} files in ${r.outDir}`);
    return 0;
  },
};
