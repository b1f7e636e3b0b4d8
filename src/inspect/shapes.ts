// The shape every hook point has for a config and a prompt length, without running the model: lets
// `inspect --compare` reject a dump of another model before the weights are loaded. Shapes are PyTorch's
// (batch dimension included), as `trace` writes them; test/inspect.test.ts checks them against a run.
import type { MiniCPMVConfig } from '../config.ts';
import { hookNames } from '../model/hooks.ts';

/** Keys whose dimension 1 is the prompt length (it depends on the input, not on the model). */
export const isSequenceKey = (key: string): boolean =>
  key === 'input_ids' || key === 'inputs_embeds' || key === 'logits' || key.startsWith('llm.');

export function hookShapes(cfg: MiniCPMVConfig, promptLength: number): Map<string, number[]> {
  const v = cfg.vision, r = cfg.resampler, L = promptLength;
  const g = Math.floor(v.imageSize / v.patchSize), N = g * g; // 448 / 14 = 32: 1024 patches
  const shape = (key: string): number[] => {
    if (key === 'pixel_values') return [1, 3, v.imageSize, v.imageSize];
    if (key === 'vpm.patch_embed') return [1, g, g, v.embedDim]; // NHWC, as timm
    if (key.startsWith('vpm.')) return [1, N, v.embedDim];
    if (key === 'resampler.kv_proj' || key === 'resampler.ln_kv') return [1, N, r.embedDim];
    if (key === 'resampler.ln_q') return [r.numQueries, r.embedDim];
    if (key === 'resampler.attn.weights') return [1, r.numHeads, r.numQueries, N];
    if (key === 'resampler.attn') return [r.numQueries, 1, r.embedDim]; // MHA is sequence-first
    if (key.startsWith('resampler')) return [1, r.numQueries, r.embedDim];
    if (key === 'input_ids') return [1, L];
    if (key === 'logits') return [1, L, cfg.llm.vocab];
    return [1, L, cfg.llm.hidden]; // inputs_embeds, llm.model.layers.*, llm.model.norm
  };
  return new Map(hookNames(cfg).map((k) => [k, shape(k)]));
}
