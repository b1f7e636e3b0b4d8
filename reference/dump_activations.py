#!/usr/bin/env python3
"""Dump every stage of one MiniCPM-V v1 chat turn to a safetensors file (float32; ids int32).

usage: dump_activations.py --model DIR --image FILE (--prompt TEXT | --msgs FILE.json) --out FILE.safetensors
                           [--new-tokens 8] [--logits-last N] [--sample-seed S] [--slim] [--no-attn-weights] [--hf]

DIR is a checkpoint in the HF layout (config.json, model.safetensors, tokenizer.model, tokenizer_config.json):
this reference's layout, e.g. weights/tiny (BF16; the reference computes in fp32 on those values). --msgs is a JSON list of {"role": "user"|"assistant",
"content": str}; the image goes into the first (user) message, as MiniCPMV.chat does. --prompt TEXT is
shorthand for [{"role": "user", "content": TEXT}].

Keys (as ../shared/golden/tiny-a/README.md): input_ids, image_bound, pixel_values, vpm.patch_embed (NHWC),
vpm.pos_embed_resampled, vpm.blocks.{i}, vpm.norm, resampler.attn.weights (the softmax probabilities per head,
[1, heads, 64, L]: nn.MultiheadAttention's output 1 with need_weights=True, average_attn_weights=False; left out
with --no-attn-weights, as the committed fixtures are), resampler.attn, resampler.ln_post, resampler, inputs_embeds,
llm.model.layers.{i}.self_attn / .mlp / (layer), llm.model.norm, logits (+ logits.positions), greedy.ids,
greedy.topk_ids, greedy.topk_logits, beam.ids, and sample.ids with --sample-seed (mulberry32 draw rule of
minicpmv_ref.sample_step). --new-tokens 0 skips generation. --slim drops pixel_values, vpm.patch_embed,
vpm.pos_embed_resampled and vpm.blocks.* (stages.slim), as the committed fixture cases other than the first.

--hf runs the ORIGINAL model instead: `transformers.AutoModel.from_pretrained(DIR, trust_remote_code=True)` in
float32 with eager attention, the HF tokenizer, and the same forward hooks (module paths are identical). It
needs transformers ~4.36-4.40 (its `generate` for beam search; 4.50+ dropped it from PreTrainedModel) and the
model's python files in DIR; transformers is not installable in this project's environment, so this path is
imported lazily and is untested here. Greedy and sampling then run as no-KV-cache loops over `llm(...)`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minicpmv_ref as ref  # noqa: E402
import stages  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='checkpoint dir (HF layout)')
    ap.add_argument('--image', required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--prompt', help='single user message')
    g.add_argument('--msgs', help='JSON file: list of {role, content}')
    ap.add_argument('--out', required=True, help='output .safetensors')
    ap.add_argument('--new-tokens', type=int, default=8)
    ap.add_argument('--logits-last', type=int, default=None, help='keep logits of the last N positions only')
    ap.add_argument('--sample-seed', type=int, default=None, help='also write sample.ids (chat sampling defaults)')
    ap.add_argument('--slim', action='store_true', help='drop pixel_values and the vision intermediates')
    ap.add_argument('--no-attn-weights', dest='attn_weights', action='store_false',
                    help='leave out resampler.attn.weights (as make_fixtures.py does)')
    ap.add_argument('--hf', action='store_true', help='run the original HF model (needs transformers)')
    a = ap.parse_args(argv)
    if a.new_tokens < 0:
        ap.error(f'--new-tokens must be >= 0, got {a.new_tokens}')
    if a.logits_last is not None and a.logits_last < 1:
        ap.error(f'--logits-last must be >= 1, got {a.logits_last}')
    return a


def read_msgs(a) -> list[dict]:
    if a.prompt is not None:
        return [{'role': 'user', 'content': a.prompt}]
    try:
        msgs = json.loads(Path(a.msgs).read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as e:
        raise ref.InputError(f'--msgs {a.msgs}: cannot read JSON ({e})') from e
    ref.chat_prompt(msgs, 1)  # validates roles/contents with a clear message
    return msgs


@torch.no_grad()
def run_hf(model_dir: Path, image: Path, msgs: list[dict], new_tokens: int, logits_last, sample_seed, attn_weights):
    """The original model through transformers (lazy import; see module docstring)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise ref.InputError('--hf needs the `transformers` package (~4.36-4.40), which is not installed') from e
    model = AutoModel.from_pretrained(str(model_dir), trust_remote_code=True, torch_dtype=torch.float32,
                                      attn_implementation='eager').float().eval()
    model.config._attn_implementation = 'eager'
    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=True)
    cfg = model.config
    ids = tok.encode(ref.chat_prompt(msgs, cfg.query_num))[:stages.MAX_INPUT_TOKENS]
    bound = ref.image_bound_of(ids, tok.im_start_id, tok.im_end_id, cfg.query_num)
    px = model.transform(ref.load_image(image))[None]                       # [1,3,448,448]
    paths = stages.stage_modules(len(model.vpm.blocks), cfg.num_hidden_layers, attn_weights)
    with stages.capture(model, paths) as st:
        # the dict MiniCPMV.generate builds: int32 ids, one [[start, end]] bound and one image stack per sample
        res = model.get_vllm_embedding({'input_ids': torch.tensor([ids], dtype=torch.int32),
                                        'image_bound': [torch.tensor(bound)], 'pixel_values': [px]})
        embeds = res[0] if isinstance(res, tuple) else res
        logits = model.llm(inputs_embeds=embeds, use_cache=False).logits.float()
    L = len(ids)
    pos = list(range(L)) if logits_last is None else list(range(max(0, L - logits_last), L))
    grid = (px.shape[2] // 14, px.shape[3] // 14)
    out = {'input_ids': stages.i32([ids]), 'image_bound': stages.i32(bound), 'pixel_values': stages.f32(px),
           'vpm.pos_embed_resampled': stages.f32(ref.resample_vpm_pos_embed(model.vpm, grid)),
           'inputs_embeds': stages.f32(embeds), 'logits': stages.f32(logits[:, pos]),
           'logits.positions': stages.i32(pos), **st}
    if new_tokens == 0:
        return out

    def last_logits(new: list[int]) -> torch.Tensor:  # no KV cache, as the golden greedy loop
        e = embeds
        if new:
            e = torch.cat([embeds, model.llm.model.embed_tokens(torch.tensor([new])) * cfg.scale_emb], dim=1)
        return model.llm(inputs_embeds=e, use_cache=False).logits[0, -1].float()

    g, tk_ids, tk_vals = [], [], []
    while len(g) < new_tokens and (not g or g[-1] != cfg.eos_token_id):
        lg = last_logits(g)
        v, i = torch.topk(lg, 8)
        tk_ids.append(i.tolist())
        tk_vals.append(v.tolist())
        g.append(int(torch.argmax(lg)))
    beam = model.llm.generate(inputs_embeds=embeds, pad_token_id=0, eos_token_id=cfg.eos_token_id, num_beams=3,
                              repetition_penalty=1.2, max_new_tokens=new_tokens, do_sample=False)[0].tolist()
    out.update({'greedy.ids': stages.i32(g), 'greedy.topk_ids': stages.i32(tk_ids),
                'greedy.topk_logits': np.asarray(tk_vals, dtype=np.float32), 'beam.ids': stages.i32(beam)})
    if sample_seed is not None:
        rng, s = ref.mulberry32(sample_seed), []
        while len(s) < new_tokens and (not s or s[-1] != cfg.eos_token_id):
            s.append(ref.sample_step(last_logits(s), rng(), 0.6, 100, 0.8)[0])
        out['sample.ids'] = stages.i32(s)
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        model_dir, image, out_path = Path(a.model), Path(a.image), Path(a.out)
        if not (model_dir / 'config.json').is_file():
            raise ref.InputError(f'--model {model_dir}: no config.json there')
        if not image.is_file():
            raise ref.InputError(f'--image {image}: not a file')
        if not out_path.parent.is_dir():
            raise ref.InputError(f'--out {out_path}: folder {out_path.parent} does not exist')
        msgs = read_msgs(a)
        if a.hf:
            out = run_hf(model_dir, image, msgs, a.new_tokens, a.logits_last, a.sample_seed, a.attn_weights)
        else:
            model, cfg = ref.load_model(model_dir)
            tok = ref.Tokenizer.from_dir(model_dir)
            if len(tok) != cfg.vocab_size:
                raise ref.InputError(f'{model_dir}: tokenizer has {len(tok)} pieces, config vocab_size is '
                                     f'{cfg.vocab_size}')
            ids, bound = stages.prompt_ids(tok, cfg, msgs)
            out, _ = stages.run_reference(model, ref.preprocess(ref.load_image(image)), ids, bound, a.new_tokens,
                                          logits_last=a.logits_last, sample_seed=a.sample_seed,
                                          attn_weights=a.attn_weights)
    except ref.RefError as e:
        print(f'dump_activations: error: {e}', file=sys.stderr)
        return 2
    if a.slim:
        out = stages.slim(out)
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(out_path))
    print(f'dump_activations: wrote {len(out)} tensors to {out_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
