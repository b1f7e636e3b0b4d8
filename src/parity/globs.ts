// Key selection and ordering for activation files keyed by PyTorch module path
// (`vpm.blocks.3.attn`, `llm.model.layers.0.mlp`, ...).
//
// Globs work on dotted segments: `*` is exactly one segment, `**` any number of segments (zero included,
// so `resampler.**` selects `resampler` itself too), and a `*` inside a segment matches characters within
// that segment (`vpm.pos_embed*`). A leading `!` excludes: `llm.**,!**.mlp`.
import { UserError } from '../errors.ts';

export class GlobError extends UserError {}

const segmentRegex = new Map<string, RegExp>();
function segmentMatches(pattern: string, segment: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === segment;
  let re = segmentRegex.get(pattern);
  if (!re) {
    const body = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*');
    re = new RegExp(`^${body}$`);
    segmentRegex.set(pattern, re);
  }
  return re.test(segment);
}

function matchSegments(p: string[], pi: number, k: string[], ki: number): boolean {
  if (pi === p.length) return ki === k.length;
  if (p[pi] === '**') {
    for (let skip = ki; skip <= k.length; skip++) if (matchSegments(p, pi + 1, k, skip)) return true;
    return false;
  }
  return ki < k.length && segmentMatches(p[pi], k[ki]) && matchSegments(p, pi + 1, k, ki + 1);
}

function checkGlob(glob: string): string[] {
  const segs = glob.split('.');
  if (glob === '' || segs.some((s) => s === '')) throw new GlobError(`key glob "${glob}" has an empty segment`);
  if (segs.some((s) => s.includes('**') && s !== '**')) {
    throw new GlobError(`key glob "${glob}": "**" must be a whole segment (as in "vpm.**")`);
  }
  return segs;
}

/** Does one glob (no commas, no `!`) match a key? */
export function matchKey(glob: string, key: string): boolean {
  return matchSegments(checkGlob(glob), 0, key.split('.'), 0);
}

/**
 * Compile comma-separated globs (a string or a list of strings) into a predicate. A key is selected when it
 * matches some positive glob (or there is none) and no `!` glob. An empty selection selects every key.
 */
export function compileGlobs(list: string | readonly string[]): (key: string) => boolean {
  const items = (typeof list === 'string' ? [list] : list).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const include: string[][] = [];
  const exclude: string[][] = [];
  for (const item of items) {
    if (item.startsWith('!')) exclude.push(checkGlob(item.slice(1)));
    else include.push(checkGlob(item));
  }
  return (key: string) => {
    const k = key.split('.');
    if (include.length > 0 && !include.some((p) => matchSegments(p, 0, k, 0))) return false;
    return !exclude.some((p) => matchSegments(p, 0, k, 0));
  };
}

// ---------------------------------------------------------------------------------------------------
// Model order

/**
 * Stages in execution order, matched by the key's leading segments (longest first). `llm.model.embed_tokens`
 * runs before `inputs_embeds` is assembled; everything else under `llm` after it.
 */
const STAGES: string[][] = [
  ['pixel_values'], ['vpm'], ['resampler'], ['input_ids'], ['image_bound'], ['llm', 'model', 'embed_tokens'],
  ['inputs_embeds'], ['llm'], ['logits'], ['greedy'], ['beam'], ['generate'], ['generation'], ['sample'],
];
const UNKNOWN_STAGE = STAGES.length;

/**
 * Module names in execution order inside their parent (timm 0.9.10 `VisionTransformer`/`Block`/`Attention`/
 * `Mlp`; MiniCPM-V v1 `resampler.py` `Resampler.forward`; `modeling_minicpm.py` `MiniCPMDecoderLayer`). One
 * list serves every parent because no two parents order the same pair of names differently. A trailing `*`
 * is a prefix match (`pos_embed_resampled`).
 */
const SEGMENT_ORDER = [
  'patch_embed', 'pos_embed*', 'pos_drop', 'patch_drop', 'norm_pre', 'kv_proj', 'ln_kv', 'ln_q', 'model',
  'embed_tokens', 'blocks', 'layers', 'input_layernorm', 'norm1', 'qkv', 'q_proj', 'k_proj', 'v_proj', 'q_norm',
  'k_norm', 'rotary_emb', 'attn_drop', 'attn', 'self_attn', 'o_proj', 'ln_post', 'proj_drop', 'ls1', 'drop_path1',
  'post_attention_layernorm', 'norm2', 'fc1', 'gate_proj', 'up_proj', 'act', 'act_fn', 'fc2', 'down_proj', 'mlp',
  'ls2', 'drop_path2', 'norm', 'fc_norm', 'attn_pool', 'head', 'lm_head',
];
// subtle: `proj` is both the patch conv (`vpm.patch_embed.proj`) and the last projection of attention and of
// the resampler (`ln_post(x) @ proj`), so it is ranked by its parent rather than listed once above.
function segmentRank(seg: string, parent: string | undefined): number {
  if (seg === 'proj') return parent === 'patch_embed' ? -1 : SEGMENT_ORDER.indexOf('ln_post') + 0.5;
  for (let i = 0; i < SEGMENT_ORDER.length; i++) {
    const s = SEGMENT_ORDER[i];
    if (s.endsWith('*') ? seg.startsWith(s.slice(0, -1)) : seg === s) return i;
  }
  return SEGMENT_ORDER.length;
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/** Natural order of two segments: numbers numerically and before names, known names by execution rank. */
function compareSegments(a: string, b: string, parent: string | undefined, known: boolean): number {
  if (a === b) return 0;
  const na = isNumeric(a);
  const nb = isNumeric(b);
  if (na && nb) return Number(a) - Number(b) || (a < b ? -1 : 1);
  if (na !== nb) return na ? -1 : 1;
  if (known) {
    const d = segmentRank(a, parent) - segmentRank(b, parent);
    if (d !== 0) return d;
  }
  return a < b ? -1 : 1;
}

function stageOf(segs: string[]): number {
  let best = UNKNOWN_STAGE;
  let bestLen = 0;
  STAGES.forEach((prefix, i) => {
    if (prefix.length > bestLen && prefix.every((p, j) => segs[j] === p)) {
      best = i;
      bestLen = prefix.length;
    }
  });
  return best;
}

/** Compare two keys in model (execution) order; sub-modules sort before the module that contains them. */
export function compareModelOrder(a: string, b: string): number {
  const sa = a.split('.');
  const sb = b.split('.');
  const stA = stageOf(sa);
  const stB = stageOf(sb);
  if (stA !== stB) return stA - stB;
  const known = stA !== UNKNOWN_STAGE;
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const d = compareSegments(sa[i], sb[i], sa[i - 1], known);
    if (d !== 0) return d;
  }
  // One key is a prefix of the other: the module's own output comes after its sub-modules ran.
  return sb.length - sa.length;
}

/** Keys sorted in model order (a new array). */
export function modelOrder(keys: Iterable<string>): string[] {
  return [...keys].sort(compareModelOrder);
}
