// The one tolerance policy of this project, with its per-stage defaults. docs/tolerances.md explains the
// numbers; this table is the only place they are written.
//
//   an element passes when |a - e| <= atol + rtol * |e|     (a = actual, e = expected / reference)
//
// Same form as numpy.isclose / torch.isclose (rtol scales with the reference value only).
// Integer tensors (token ids, bounds, positions) are not covered by it: they must match exactly.
import { compileGlobs } from './globs.ts';

export interface Tolerance {
  rtol: number;
  atol: number;
}

export interface StageTolerance extends Tolerance {
  stage: string;
  /** Keys of the stage (comma-separated globs, see globs.ts); the first stage that matches wins. */
  keys: string;
}

/** fp32 against fp32 (this project on TF.js against the original PyTorch code on CPU). */
export const STAGE_TOLERANCES: readonly StageTolerance[] = [
  { stage: 'preprocessing', keys: 'pixel_values', rtol: 0, atol: 1e-6 },
  { stage: 'patch embedding', keys: 'vpm.patch_embed.**,vpm.pos_embed*', rtol: 1e-5, atol: 1e-5 },
  { stage: 'vision tower', keys: 'vpm.**', rtol: 1e-4, atol: 1e-4 },
  { stage: 'resampler', keys: 'resampler.**', rtol: 1e-4, atol: 1e-4 },
  { stage: 'embeddings', keys: 'llm.model.embed_tokens.**,inputs_embeds', rtol: 1e-4, atol: 1e-4 },
  { stage: 'logits', keys: 'logits,llm.lm_head,**.topk_logits', rtol: 1e-4, atol: 1e-3 },
  { stage: 'language model', keys: 'llm.**', rtol: 1e-4, atol: 1e-4 },
];

/** Keys no stage claims. */
export const DEFAULT_TOLERANCE: StageTolerance = { stage: 'other', keys: '**', rtol: 1e-4, atol: 1e-4 };

/** Keys compared exactly even when stored as floats (`input_ids`, `greedy.ids`, `image_bound`, ...). */
export const INTEGER_KEYS = 'input_ids,**.ids,**.*_ids,image_bound,**.positions';

const stageMatchers = STAGE_TOLERANCES.map((s) => ({ s, match: compileGlobs(s.keys) }));
const integerMatcher = compileGlobs(INTEGER_KEYS);

export interface ResolvedTolerance extends Tolerance {
  stage: string;
  /** True when --rtol/--atol replaced a stage default. */
  overridden: boolean;
}

/** The tolerance for a key: its stage default, with `override.rtol` / `override.atol` taking precedence. */
export function toleranceFor(key: string, override: Partial<Tolerance> = {}): ResolvedTolerance {
  const s = stageMatchers.find((m) => m.match(key))?.s ?? DEFAULT_TOLERANCE;
  return {
    stage: s.stage,
    rtol: override.rtol ?? s.rtol,
    atol: override.atol ?? s.atol,
    overridden: override.rtol !== undefined || override.atol !== undefined,
  };
}

/** The policy in one line, as reports print it. */
export const POLICY = '|a-e| <= atol + rtol*|e| elementwise (a = A actual, e = B expected); integer keys exact; NaN/Inf fail';

export const isIntegerKeyName = (key: string): boolean => integerMatcher(key);
