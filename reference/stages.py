"""Stage capture shared by check_golden.py, make_fixtures.py and dump_activations.py.

Keys follow PyTorch module paths, as in ../shared/golden/tiny-a/README.md. Forward hooks are registered by
module path, so the same code records the original HF model (`--hf`) and this reference.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

import minicpmv_ref as ref

MAX_INPUT_TOKENS = 2048  # chat(): max_inp_length, keeps the head (SPEC 6)


# nn.MultiheadAttention's second output, the softmax probabilities per head [B, heads, Q, L]: not a module of its
# own, so `capture` asks `resampler.attn` for them (need_weights=True, average_attn_weights=False).
ATTN_WEIGHTS = 'resampler.attn.weights'


def stage_modules(n_vision_blocks: int, n_layers: int, attn_weights: bool = False) -> list[str]:
    paths = ['vpm.patch_embed'] + [f'vpm.blocks.{i}' for i in range(n_vision_blocks)] + ['vpm.norm']
    paths += ([ATTN_WEIGHTS] if attn_weights else []) + ['resampler.attn', 'resampler.ln_post', 'resampler']
    for i in range(n_layers):
        paths += [f'llm.model.layers.{i}.self_attn', f'llm.model.layers.{i}.mlp', f'llm.model.layers.{i}']
    return paths + ['llm.model.norm']


@contextmanager
def capture(model: torch.nn.Module, paths: list[str]):
    """Record the FIRST output of each module path (tuples -> element 0) as float32 numpy. `MHA_PATH.weights`
    records that nn.MultiheadAttention's attention probabilities per head (its output 1)."""
    out: dict[str, np.ndarray] = {}
    handles = []
    for path in paths:
        if path.endswith('.weights'):
            mha = model.get_submodule(path[:-len('.weights')])

            # need_weights=True is MHA's default (the path the original runs); average_attn_weights=False only
            # keeps the heads apart in output 1 (torch averages after `attn @ v`), so output 0 is unchanged.
            def per_head(_m, args, kwargs):
                return args, {**kwargs, 'need_weights': True, 'average_attn_weights': False}

            def weights_hook(_m, _inp, res, key=path):
                if key not in out:
                    out[key] = res[1].detach().float().cpu().numpy().copy()
            handles.append(mha.register_forward_pre_hook(per_head, with_kwargs=True))
            handles.append(mha.register_forward_hook(weights_hook))
            continue
        mod = model.get_submodule(path)

        def hook(_m, _inp, res, key=path):
            if key not in out:
                t = res[0] if isinstance(res, (tuple, list)) else res
                out[key] = t.detach().float().cpu().numpy().copy()
        handles.append(mod.register_forward_hook(hook))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


def i32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int32)


@torch.no_grad()
def run_reference(model: ref.MiniCPMV, pixel_values: torch.Tensor, input_ids: list[int],
                  image_bound: list[list[int]], new_tokens: int, logits_last: int | None = None,
                  sample_seed: int | None = None, attn_weights: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Every stage of one chat turn on this reference, plus greedy / beam / (optional) sampled ids.
    `attn_weights` adds resampler.attn.weights (the committed fixtures were made without it)."""
    cfg = model.cfg
    paths = stage_modules(len(model.vpm.blocks), cfg.num_hidden_layers, attn_weights)
    ids_t = torch.tensor([input_ids])
    with capture(model, paths) as st:
        vision = model.vision(pixel_values)
        embeds = model.inputs_embeds(ids_t, torch.tensor(image_bound), vision)
        logits = model.llm(embeds)                                           # [1, L, V], all positions
    L = len(input_ids)
    pos = list(range(L)) if logits_last is None else list(range(max(0, L - logits_last), L))
    out = {'input_ids': i32([input_ids]), 'image_bound': i32(image_bound), 'pixel_values': f32(pixel_values),
           'vpm.pos_embed_resampled': f32(ref.resample_vpm_pos_embed(model.vpm, (pixel_values.shape[2] // 14,
                                                                                   pixel_values.shape[3] // 14))),
           'inputs_embeds': f32(embeds), 'logits': f32(logits[:, pos]), 'logits.positions': i32(pos), **st}
    if new_tokens <= 0:
        return out, {}
    eos = cfg.eos_token_id
    g, tk_ids, tk_vals = ref.greedy(model.llm, embeds, new_tokens, eos)
    b, binfo = ref.beam_search(model.llm, embeds, new_tokens, eos)
    out.update({'greedy.ids': i32(g), 'greedy.topk_ids': i32(tk_ids),
                'greedy.topk_logits': np.asarray(tk_vals, dtype=np.float32), 'beam.ids': i32(b)})
    info = {'beam': binfo, 'greedy_top1_minus_top2_logit': [v[0] - v[1] for v in tk_vals]}
    if sample_seed is not None:
        s, sinfo = ref.sample(model.llm, embeds, new_tokens, eos, sample_seed)
        out['sample.ids'] = i32(s)
        info['sample'] = dict(sinfo, seed=sample_seed)
    return out, info


# Vision intermediates before `vpm.norm`: the committed fixtures keep them for one case only (size).
VISION_DETAIL = ('pixel_values', 'vpm.patch_embed', 'vpm.pos_embed_resampled', 'vpm.blocks.')


def slim(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop pixel_values and the vision intermediates; keep vpm.norm, resampler*, the LLM side and the ids."""
    return {k: v for k, v in tensors.items() if not k.startswith(VISION_DETAIL)}


def prompt_ids(tok: ref.Tokenizer, cfg: ref.Config, msgs: list[dict]) -> tuple[list[int], list[list[int]]]:
    ids = tok.encode(ref.chat_prompt(msgs, cfg.query_num))[:MAX_INPUT_TOKENS]
    return ids, ref.image_bound_of(ids, tok.im_start_id, tok.im_end_id, cfg.query_num)


def rel_err(a: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    """(max|a-e|, max|a-e| / max|e|) -- the golden README's metric."""
    d = float(np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)))) if e.size else 0.0
    m = float(np.max(np.abs(e))) if e.size else 0.0
    return d, (d / m if m > 0 else d)
