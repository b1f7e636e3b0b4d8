// `minicpmv info`: what a checkpoint directory holds and what running it costs.
import fs from 'node:fs';
import path from 'node:path';
import { bool, parseArgs, str, type FlagSpecs } from '../args.ts';
import type { Command } from '../command.ts';
import { BACKEND_FLAG, MODEL_FLAG, modelDir, startBackend } from '../common.ts';
import { expectedTensors, type MiniCPMVConfig } from '../../config.ts';
import { loadModelConfig } from '../../model/model_dir.ts';
import { openCheckpoint } from '../../weights/checkpoint.ts';

const flags: FlagSpecs = { ...MODEL_FLAG, ...BACKEND_FLAG, json: { type: 'boolean', help: 'JSON output' } };

export function parameterCounts(cfg: MiniCPMVConfig): Record<string, number> {
  const counts: Record<string, number> = { vision: 0, resampler: 0, llm: 0 };
  for (const t of expectedTensors(cfg)) counts[t.role] += t.shape.reduce((a, b) => a * b, 1);
  return counts;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export const command: Command = {
  name: 'info',
  summary: 'config summary, parameter counts, memory, backend',
  usage: '[--model DIR] [--backend NAME] [--json]',
  flags,
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const dir = modelDir(str(p, 'model'));
    const cfg = loadModelConfig(dir);
    const ckpt = openCheckpoint(dir);
    const layout = ckpt.layout;
    const storedDtypes = [...new Set(ckpt.keys().map((k) => ckpt.info(k).dtype))];
    ckpt.close();
    const backend = await startBackend(io, str(p, 'backend'), true);
    const { describeBackend } = await import('../../backend/index.ts');
    const counts = parameterCounts(cfg);
    const total = counts.vision + counts.resampler + counts.llm;
    // Both backends hold every weight as float32; activations for one 448x448 image and a
    // 2048-token context add well under 1 GiB at full size.
    const memory = { weightsFloat32Bytes: total * 4, visionOnlyFloat32Bytes: (counts.vision + counts.resampler) * 4 };
    const v = cfg.vision, l = cfg.llm, r = cfg.resampler;
    const info = {
      model: path.resolve(dir), layout, storedDtypes,
      tokenizer: fs.existsSync(path.join(dir, 'tokenizer.model')),
      vision: { ...v }, resampler: { ...r }, llm: { ...l },
      parameters: { ...counts, total }, memory, backend: backend.name, backendLine: describeBackend(backend),
    };
    if (bool(p, 'json')) {
      io.out(JSON.stringify(info, null, 2));
      return 0;
    }
    io.out([
      `model        ${info.model} (${layout}, stored ${storedDtypes.join('/')})`,
      `vision (vpm) SigLIP ViT: ${v.embedDim} wide, ${v.blocksRun} of ${v.depth} blocks run, ${v.numHeads} heads x ${v.headDim}, MLP ${v.mlpHidden}, patch ${v.patchSize}, ${v.imageSize}x${v.imageSize} input, pos table ${v.posGrid}x${v.posGrid}`,
      `resampler    ${r.numQueries} queries, ${r.numHeads} heads, ${r.kvDim} -> ${r.embedDim}`,
      `llm          MiniCPM: ${l.numLayers} layers, hidden ${l.hidden}, ${l.numHeads} heads x ${l.headDim}, MLP ${l.intermediate}, vocab ${l.vocab}, ` +
        `scale_emb ${l.scaleEmb}, residual x${l.residualScale.toFixed(6)}, logits / ${l.logitDivisor}`,
      `parameters   vision ${counts.vision.toLocaleString('en-US')}, resampler ${counts.resampler.toLocaleString('en-US')}, ` +
        `llm ${counts.llm.toLocaleString('en-US')}, total ${total.toLocaleString('en-US')}`,
      `memory       weights as float32 on tensorflow and cpu: ${gib(memory.weightsFloat32Bytes)} (vision tower alone ${gib(memory.visionOnlyFloat32Bytes)})`,
      describeBackend(backend),
    ].join('\n'));
    return 0;
  },
};
