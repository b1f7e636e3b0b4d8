// Hook points named by PyTorch module path, so a forward hook in PyTorch and
// this project record the same key (TransformerLens-style names would need a
// mapping table; these need none). Shapes are PyTorch's, batch dim included.
//
// A forward pass calls `hooks.emit(key, tensor)` at every hook point. `emit`
// hands the tensor to the recorder when the key is selected (synchronously:
// the tensor is valid only during the call, so a recorder copies or streams
// it) and returns either the tensor or, when patched, the replacement.
import * as tf from '../tfjs.ts';
import type { MiniCPMVConfig } from '../config.ts';
import { UserError } from '../errors.ts';

export class HookError extends UserError {}

export interface HookOptions {
  /** Which keys to record; none recorded when absent. */
  select?: (key: string) => boolean;
  /** Receives each selected activation. The tensor is disposed after the call returns. */
  onActivation?: (key: string, value: tf.Tensor) => void;
  /** Replace a hook's output with this tensor (same shape) and run on. Owned by the caller. */
  patches?: Map<string, tf.Tensor>;
}

export class Hooks {
  private readonly unusedPatches: Set<string>;
  constructor(private readonly opts: HookOptions = {}) {
    this.unusedPatches = new Set(opts.patches?.keys() ?? []);
  }

  static none(): Hooks {
    return new Hooks();
  }

  /** True when `emit` would do anything for this key (lets callers skip building a tensor). */
  active(key: string): boolean {
    return Boolean(this.opts.patches?.has(key) || (this.opts.onActivation && this.opts.select?.(key)));
  }

  emit<T extends tf.Tensor>(key: string, value: T): T {
    const patch = this.opts.patches?.get(key);
    let out = value;
    if (patch) {
      if (!tf.util.arraysEqual(patch.shape, value.shape)) {
        throw new HookError(`patch for "${key}" has shape [${patch.shape}] but the model produces [${value.shape}] there`);
      }
      out = patch.dtype === value.dtype ? (patch.clone() as T) : (patch.cast(value.dtype) as T);
      this.unusedPatches.delete(key);
    }
    if (this.opts.onActivation && this.opts.select?.(key)) this.opts.onActivation(key, out);
    return out;
  }

  /** Patches whose key the forward pass never reached. */
  unused(): string[] {
    return [...this.unusedPatches];
  }
}

/** The hook points of decoder layer `llm.model.layers.{i}`, as suffixes of its name ('' is its output), in order. */
export const LLM_LAYER_HOOKS = ['.input_layernorm', '.self_attn', '.post_attention_layernorm', '.mlp', ''] as const;

/** Every hook point of the model, in execution order. */
export function hookNames(cfg: MiniCPMVConfig): string[] {
  return hookPoints(cfg.vision.blocksRun, cfg.llm.numLayers);
}

function hookPoints(visionBlocks: number, llmLayers: number, index = (i: number) => String(i)): string[] {
  const names = ['pixel_values', 'vpm.patch_embed', 'vpm.pos_embed_resampled'];
  for (let i = 0; i < visionBlocks; i++) {
    const b = `vpm.blocks.${index(i)}`;
    names.push(`${b}.norm1`, `${b}.attn`, `${b}.norm2`, `${b}.mlp`, b);
  }
  names.push('vpm.norm', 'resampler.kv_proj', 'resampler.ln_kv', 'resampler.ln_q', 'resampler.attn.weights', 'resampler.attn',
    'resampler.ln_post', 'resampler', 'input_ids', 'inputs_embeds');
  for (let i = 0; i < llmLayers; i++) {
    const l = `llm.model.layers.${index(i)}`;
    names.push(...LLM_LAYER_HOOKS.map((s) => l + s));
  }
  names.push('llm.model.norm', 'logits');
  return names;
}

/** The hook names with `{i}` for a block or layer index, in execution order (any model size). */
export function hookPatterns(): string[] {
  return hookPoints(1, 1, () => '{i}');
}

/**
 * The hook names in one line, as `trace --help` and the README write them: a block's sub-hooks folded
 * into `vpm.blocks.{i}[.norm1|.attn|...]`.
 */
export function hookSummary(): string {
  const out: string[] = [];
  for (const p of hookPatterns()) {
    const sub = /^(.*\.\{i\})(\..+)$/.exec(p); // a block's sub-hook: [block, .sub]
    const last = out[out.length - 1];
    if (sub && last?.startsWith(`${sub[1]}[`)) out[out.length - 1] = `${last.slice(0, -1)}|${sub[2]}]`;
    else if (sub) out.push(`${sub[1]}[${sub[2]}]`);
    else if (!last?.startsWith(`${p}[`)) out.push(p); // (a block itself is already named with its sub-hooks)
  }
  return out.join(', ');
}
