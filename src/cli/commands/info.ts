// `minicpmv info`: what a checkpoint directory holds and what running it costs.
import fs from 'node:fs';
import path from 'node:path';
import { bool, parseArgs, str, type FlagSpecs } from '../args.ts';
import type { Command } from '../command.ts';
import { BACKEND_FLAG, MODEL_FLAG, WEIGHTS_DTYPE_FLAG, modelDir, startBackend } from '../common.ts';
import { expectedTensors, type MiniCPMVConfig } from '../../config.ts';
import { loadModelConfig } from '../../model/model_dir.ts';
import { residencyPlan, type WeightsDtypeOption } from '../../model/minicpmv.ts';
import { openCheckpoint } from '../../weights/checkpoint.ts';

const flags: FlagSpecs = { ...MODEL_FLAG, ...BACKEND_FLAG, ...WEIGHTS_DTYPE_FLAG, json: { type: 'boolean', help: 'JSON output' } };

export function parameterCounts(cfg: MiniCPMVConfig): Record<string, number> {
  const counts: Record<string, number> = { vision: 0, resampler: 0, llm: 0 };
  for (const t of expectedTensors(cfg)) counts[t.role] += t.shape.reduce((a, b) => a * b, 1);
  return counts;
}

const gib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

export const command: Command = {
  name: 'info',
  summary: 'config summary, parameter counts, memory, backend',
  usage: '[--model DIR] [--backend NAME] [--weights-dtype auto|f32] [--json]',
  flags,
  async run(argv, io) {
    const p = parseArgs(argv, flags);
    const dir = modelDir(str(p, 'model'));
    const cfg = loadModelConfig(dir);
    const backend = await startBackend(io, str(p, 'backend'), true);
    const ckpt = openCheckpoint(dir);
    const layout = ckpt.layout;
    const storedDtypes = [...new Set(ckpt.keys().map((k) => ckpt.info(k).dtype))];
    // What a load would hold: weight matrices in their 16-bit checkpoint dtype where the native ops run
    // (--weights-dtype auto), else float32. Only tensors the config expects (a mismatch fails at load).
    const known = expectedTensors(cfg).filter((t) => ckpt.has(t.key));
    const resident = residencyPlan(ckpt, known, str(p, 'weights-dtype') as WeightsDtypeOption).weights;
    ckpt.close();
    const { describeBackend } = await import('../../backend/index.ts');
    const counts = parameterCounts(cfg);
    const total = counts.vision + counts.resampler + counts.llm;
    // Activations for one 448x448 image and a 2048-token context add well under 1 GiB at full size; the KV
    // cache holds 8 bytes per layer, kv head dim and position for each beam.
    const memory = { weightsFloat32Bytes: total * 4, visionOnlyFloat32Bytes: (counts.vision + counts.resampler) * 4, resident };
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
      `memory       weights resident ${gib(resident.residentBytes)} (${resident.dtype === 'f32' ? 'float32' : `matrices in ${resident.dtype}`}); ` +
        `all float32 ${gib(memory.weightsFloat32Bytes)} (vision tower alone ${gib(memory.visionOnlyFloat32Bytes)})`,
      describeBackend(backend),
    ].join('\n'));
    return 0;
  },
};
