#!/usr/bin/env python3
"""Write the bundled tiny model (weights/tiny/) and the committed parity fixtures (test/fixtures/tiny/).

usage: make_fixtures.py [--out test/fixtures/tiny] [--weights weights/tiny] [--seed 142] [--scan N]

Deterministic: a re-run on the same machine writes byte-identical files; on another CPU the float tensors
agree within rel/abs 1e-5 (summation order differs) and ids, bounds and pixel bytes are identical. Layout:
  weights/tiny/         the CLI's bundled default model, HF layout: config.json (real keys, tiny sizes, plus the
                        vision_* keys as golden tiny-a), generation_config.json, model.safetensors (BF16 only),
                        tokenizer.model, tokenizer_config.json, special_tokens_map.json. Random weights (tiny-a's
                        init recipe, another seed) rounded to bf16 once; the reference runs in fp32 on exactly
                        those values (bf16 -> fp32 is exact), so an f32 conversion of the checkpoint gives the
                        same outputs.
  test/fixtures/tiny/
    images/             small images of several modes and one JPEG; images.safetensors holds each one's
                        Image.open(..).convert('RGB') as uint8 HWC (key NAME.rgb_u8): the JPEG case's model
                        input is that PIL decode (libjpeg-turbo), not a JS decoder's.
    cases/NAME.safetensors one chat turn, keys as golden tiny-a (README there), float32; `logits` only at the last
                        LOGITS_LAST positions (`logits.positions`). The first case keeps every stage; the others
                        drop pixel_values and the vision intermediates before vpm.norm (stages.slim) for size.
    tokenizer-cases.json  ids and decoded text of the tiny tokenizer, HF slow-tokenizer semantics.
    manifest.json       seed, versions, tolerances, images, cases (prompt, ids, answers, robustness margins).

--scan N runs every case for weight seeds 0..N-1 (nothing written) and prints the smallest greedy / beam /
sampling margins of each seed; the default seed was picked that way.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_np
from safetensors.torch import save_file as save_pt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minicpmv_ref as ref  # noqa: E402
import stages  # noqa: E402
import tiny_tokenizer as tt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NEW_TOKENS = 8
LOGITS_LAST = 8
SAMPLE_SEED = 1234

DEFAULT_SEED = 142  # best of --scan 400 (largest smallest margin, sampling margins x10); golden tiny-a used 2

# vision: embed 48, depth 3 (2 blocks run), 4 heads of 12, MLP int(48 * 3.7362) = 179; resampler heads 128 // 128
# = 1; LLM: 2 layers, 2 heads of 64, logit divisor 128 / 16 = 8 (close to the real 9).
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            intermediate_size=256, dim_model_base=16, vision_embed_dim=48, vision_depth=3, vision_num_heads=4,
            vision_mlp_ratio=3.7362)

# 'full': keep every stage (stages.run_reference); otherwise stages.slim.
CASES = [
    {'id': 'c1_rgb_en', 'image': 'rgb_160x120.png', 'full': True,
     'msgs': [{'role': 'user', 'content': 'What is in the image?'}]},
    {'id': 'c2_jpeg_zh', 'image': 'photo_200x150.jpg', 'full': False,
     'msgs': [{'role': 'user', 'content': '这张图片里有什么？请详细描述。'}]},
    {'id': 'c3_palette_multiturn', 'image': 'palette_P_120x90.png', 'full': False,
     'msgs': [{'role': 'user', 'content': 'Describe the colors.'},
              {'role': 'assistant', 'content': 'There are red and blue stripes on a gray background.'},
              {'role': 'user', 'content': 'What shape is in the center? Answer in one word.'}]},
    {'id': 'c4_gray16_count', 'image': 'gray16_72x56.png', 'full': False,
     'msgs': [{'role': 'user', 'content': 'Count the bright bands: 1, 2 or 3?'}]},
]

TOKENIZER_TEXTS = ['What is in the image?', '这张图片里有什么？', 'Hello, 世界! 🌍', '  indented\ttext\n',
                   '123 + 456 = 579', '<image></image>', '<用户>问题<AI>回答', '<s>x</s>', '<unk><unk>',
                   '<box>(1,2),(3,4)</box>', '<ref>red circle</ref><quad>', 'a  b   c', 'emoji 😀😃',
                   'Ünïcödé àccents', '<reserved_50> and <SEP>', 'Question: what color is the sky?\nAnswer:']


def config_json(vocab: int) -> dict:
    """The real config.json's keys (SPEC 1) with tiny sizes and the explicit vision_* keys."""
    c = {'_name_or_path': 'minicpmv-ts/weights/tiny', 'architectures': ['MiniCPMV'], 'attention_bias': False,
         'attention_dropout': 0.0,
         'auto_map': {'AutoConfig': 'configuration_minicpm.MiniCPMVConfig', 'AutoModel': 'modeling_minicpmv.MiniCPMV',
                      'AutoModelForCausalLM': 'modeling_minicpmv.MiniCPMV'},
         'bos_token_id': 1, 'dim_model_base': TINY['dim_model_base'], 'drop_vision_last_layer': True,
         'eos_token_id': 2, 'hidden_act': 'silu', 'hidden_size': TINY['hidden_size'], 'image_size': 448,
         'initializer_range': 0.1, 'intermediate_size': TINY['intermediate_size'], 'max_position_embeddings': 2048,
         'model_type': 'minicpmv', 'num_attention_heads': TINY['num_attention_heads'],
         'num_hidden_layers': TINY['num_hidden_layers'], 'num_key_value_heads': TINY['num_key_value_heads'],
         'pretraining_tp': 1, 'query_num': 64, 'rms_norm_eps': 1e-05, 'rope_scaling': None, 'rope_theta': 10000.0,
         'scale_depth': 1.4, 'scale_emb': 12, 'tie_word_embeddings': False, 'torch_dtype': 'bfloat16',
         'transformers_version': '4.36.0', 'use_cache': True,
         'vision_encoder': 'vit_so400m_patch14_siglip_384.webli', 'vocab_size': vocab}
    c.update({k: TINY[k] for k in ('vision_embed_dim', 'vision_depth', 'vision_num_heads', 'vision_mlp_ratio')})
    c['vision_mlp_hidden_dim'] = int(TINY['vision_embed_dim'] * TINY['vision_mlp_ratio'])
    return c


def init_rule(key: str, shape: tuple[int, ...], cfg: ref.Config) -> tuple[str, float, float]:
    """tiny-a manifest `weights.init`, by parameter name: (kind, mean, std)."""
    fan_in = shape[1] if len(shape) == 2 else int(np.prod(shape[1:])) if len(shape) > 2 else 0
    if key == 'resampler.pos_embed':
        return 'sincos', 0, 0
    if key.endswith('bias'):
        return 'normal', 0.0, 0.02
    if ('norm' in key or '.ln_' in key) and key.endswith('weight'):
        return 'normal', 1.0, 0.1
    special = {'llm.model.embed_tokens.weight': 0.1, 'llm.lm_head.weight': 1.5, 'vpm.pos_embed': 0.5,
               'resampler.query': 1.0, 'resampler.proj': cfg.hidden_size ** -0.5}
    if key in special:
        return 'normal', 0.0, special[key]
    if key == 'vpm.patch_embed.proj.weight' or key.endswith(('q_proj.weight', 'k_proj.weight')):
        return 'normal', 0.0, 1.5 / fan_in ** 0.5
    return 'normal', 0.0, 1.0 / fan_in ** 0.5


def random_weights(cfg: ref.Config, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    torch.manual_seed(0)
    shapes = {k: tuple(v.shape) for k, v in ref.MiniCPMV(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    out, recipe = {}, {}
    for key in sorted(shapes):
        kind, mean, std = init_rule(key, shapes[key], cfg)
        if kind == 'sincos':
            t = torch.from_numpy(ref.sincos_2d(cfg.hidden_size, int(cfg.query_num ** 0.5)))
            recipe[key] = 'the original 2-D sin-cos table (SPEC 3)'
        else:
            t = torch.randn(shapes[key], generator=g) * std + mean
            recipe[key] = f'N({mean:g}, {std:.6g})'
        out[key] = t.to(torch.bfloat16)  # rounded once; the reference computes in fp32 on these values
    return out, recipe


def make_images(out: Path) -> dict[str, dict]:
    """The cases' images: synthetic, seeded, small (< 40 KB each), one per decoder path (RGB PNG, baseline
    JPEG, palette PNG, 16-bit gray PNG)."""
    from PIL import Image
    r = np.random.default_rng(11)
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    rgb = np.stack([xx / 160 * 255, yy / 120 * 255, 128 + 100 * np.sin(xx / 9) * np.cos(yy / 7)], -1)
    rgb[((xx - 80) ** 2 + (yy - 60) ** 2) < 30 ** 2] = [230, 40, 40]
    rgb = np.clip(rgb + r.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    yy2, xx2 = np.mgrid[0:150, 0:200].astype(np.float32)
    photo = np.stack([120 + 80 * np.sin(xx2 / 17), 90 + 60 * np.cos(yy2 / 11), 200 - yy2 * 0.8], -1)
    photo[(yy2 > 40) & (yy2 < 110) & (np.abs(xx2 - 100) < 12)] = [240, 240, 250]
    photo = np.clip(photo + r.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
    yy3, xx3 = np.mgrid[0:90, 0:120]
    pal_idx = ((xx3 // 10) % 2 * 2 + (yy3 // 15) % 2).astype(np.uint8)
    pal_idx[((xx3 - 60) ** 2 + (yy3 - 45) ** 2) < 18 ** 2] = 4
    palette = [200, 30, 30, 30, 60, 200, 128, 128, 128, 90, 90, 90, 250, 220, 40] + [0] * (256 * 3 - 15)
    yy6, xx6 = np.mgrid[0:56, 0:72].astype(np.float32)
    g16 = (170 + 150 * np.sin(xx6 / 4) + yy6).astype(np.uint16)  # 20..375: Pillow's I;16 -> RGB clips above 255
    ims = {
        'rgb_160x120.png': (Image.fromarray(rgb, 'RGB'), 'RGB', 'gradients, sine, red disc, N(0,6) noise'),
        'photo_200x150.jpg': (Image.fromarray(photo, 'RGB'), 'RGB', 'baseline JPEG q90 4:2:0, sine bands, bar'),
        'palette_P_120x90.png': (None, 'P', '5-colour palette: checker stripes and a yellow disc'),
        'gray16_72x56.png': (Image.fromarray(g16), 'I;16', '16-bit vertical bands 20..375 (convert(RGB) clips to 255)'),
    }
    p = Image.fromarray(pal_idx, 'P')
    p.putpalette(palette)
    ims['palette_P_120x90.png'] = (p, 'P', ims['palette_P_120x90.png'][2])
    (out / 'images').mkdir(parents=True, exist_ok=True)
    info, rgbs = {}, {}
    for name, (im, mode, desc) in ims.items():
        path = out / 'images' / name
        if name.endswith('.jpg'):
            im.save(path, quality=90, subsampling='4:2:0', optimize=False, progressive=False)
        else:
            im.save(path, optimize=False)
        opened = Image.open(path)
        rgb_u8 = np.asarray(ref.load_image(path))
        resized = np.asarray(ref.load_image(path).resize((448, 448), Image.BICUBIC))
        rgbs[f'{name}.rgb_u8'] = rgb_u8
        info[name] = {'file': f'images/{name}', 'format': opened.format, 'mode': opened.mode, 'size_wh': list(opened.size),
                      'description': desc, 'sha256': hashlib.sha256(path.read_bytes()).hexdigest(),
                      'bytes': path.stat().st_size,
                      'resized_u8_sha256': hashlib.sha256(np.ascontiguousarray(resized).tobytes()).hexdigest()}
        assert opened.mode == mode, (name, opened.mode)
        assert path.stat().st_size < 40_000, (name, path.stat().st_size)
    save_np(rgbs, str(out / 'images' / 'images.safetensors'))
    return info


def write_weights(d: Path, weights: dict[str, torch.Tensor], vocab: int, tok_bytes: bytes) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / 'config.json').write_text(json.dumps(config_json(vocab), indent=2) + '\n')
    (d / 'generation_config.json').write_text(json.dumps(
        {'_from_model_config': True, 'bos_token_id': 1, 'eos_token_id': 2, 'transformers_version': '4.36.0'},
        indent=2) + '\n')
    save_pt({k: v.contiguous() for k, v in weights.items()}, str(d / 'model.safetensors'), metadata={'format': 'pt'})
    (d / 'tokenizer.model').write_bytes(tok_bytes)
    (d / 'tokenizer_config.json').write_text(json.dumps(tt.tokenizer_config(), indent=2, ensure_ascii=False) + '\n')
    (d / 'special_tokens_map.json').write_text(json.dumps(tt.special_tokens_map(), indent=2) + '\n')


def run_cases(model: ref.MiniCPMV, tok: ref.Tokenizer, images_dir: Path):
    """Yields (case, tensors to store, robustness) for every case."""
    cfg = model.cfg
    for case in CASES:
        ids, bound = stages.prompt_ids(tok, cfg, case['msgs'])
        px = ref.preprocess(ref.load_image(images_dir / case['image']))
        tensors, info = stages.run_reference(model, px, ids, bound, NEW_TOKENS, logits_last=LOGITS_LAST,
                                             sample_seed=SAMPLE_SEED)
        if not case['full']:
            tensors = stages.slim(tensors)
        rob = {'greedy_top1_minus_top2_logit_min': min(info['greedy_top1_minus_top2_logit']),
               'beam_selection_gap_min': info['beam']['selection_gap_min'],
               'beam_best_minus_second_final_score': info['beam']['best_minus_second_final_score'],
               'beam_best_score': info['beam']['best_score'],
               'sample_margins_min': info['sample']}
        yield case, tensors, rob


def smallest_margins(robs: list[dict]) -> dict:
    """The margins that decide whether float32 noise (~1e-5 in logits) could flip an id."""
    s = [r['sample_margins_min'] for r in robs]
    return {'greedy_gap': min(r['greedy_top1_minus_top2_logit_min'] for r in robs),
            'beam_selection_gap': min(r['beam_selection_gap_min'] for r in robs),
            'beam_final_gap': min(r['beam_best_minus_second_final_score'] for r in robs),
            'sample_u': min(m['u'] for m in s), 'sample_top_p': min(m['top_p'] for m in s),
            'sample_kept_max': max(m['kept'] for m in s)}


def model_from(cfg: ref.Config, weights: dict[str, torch.Tensor]) -> ref.MiniCPMV:
    torch.manual_seed(0)
    model = ref.MiniCPMV(cfg).eval()
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    return model


def scan(cfg: ref.Config, tok: ref.Tokenizer, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        make_images(Path(tmp))
        for seed in range(n):
            weights, _ = random_weights(cfg, seed)
            m = smallest_margins([r for _, _, r in run_cases(model_from(cfg, weights), tok, Path(tmp) / 'images')])
            worst = min(m['greedy_gap'], m['beam_selection_gap'], m['beam_final_gap'], 10 * m['sample_u'],
                        10 * m['sample_top_p'])
            print(f'seed {seed:3d}: worst {worst:.3e}  ' + '  '.join(f'{k} {v:.3g}' for k, v in m.items()), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(REPO / 'test' / 'fixtures' / 'tiny'))
    ap.add_argument('--weights', default=str(REPO / 'weights' / 'tiny'))
    ap.add_argument('--seed', type=int, default=DEFAULT_SEED, help='weight seed')
    ap.add_argument('--scan', type=int, default=0, metavar='N', help='print the margins of seeds 0..N-1, write nothing')
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out, wdir = Path(args.out), Path(args.weights)

    tok_bytes = tt.train()
    tt.check_layout(tok_bytes)
    vocab = tt.VOCAB_SIZE
    cfg = ref.Config(**{k: v for k, v in config_json(vocab).items()
                        if k in {f.name for f in dataclasses.fields(ref.Config)}})
    cfg.validate()
    if args.scan:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / 'tokenizer.model').write_bytes(tok_bytes)
            (Path(tmp) / 'tokenizer_config.json').write_text(json.dumps(tt.tokenizer_config()))
            return scan(cfg, ref.Tokenizer.from_dir(tmp), args.scan)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    weights, recipe = random_weights(cfg, args.seed)
    write_weights(wdir, weights, vocab, tok_bytes)
    model, cfg = ref.load_model(wdir)
    same = all(torch.equal(model.state_dict()[k], v.float()) for k, v in weights.items())
    assert same, 'weights/tiny must load as exactly the bf16-rounded numbers'
    tok = ref.Tokenizer.from_dir(wdir)
    images = make_images(out)

    tok_cases = [{'text': t, 'ids': tok.encode(t), 'pieces': [tok.sp.id_to_piece(i) for i in tok.encode(t)],
                  'decoded': tok.decode(tok.encode(t))} for t in TOKENIZER_TEXTS]
    (out / 'tokenizer-cases.json').write_text(json.dumps(
        {'what': 'tiny tokenizer (weights/tiny/tokenizer.model): ids = encode(text) with bos, HF slow LlamaTokenizer '
                 'split on the added special tokens (transformers 4.36, legacy=True); decoded = decode(ids), 4.36 '
                 'semantics. Produced by reference/minicpmv_ref.py Tokenizer, which reproduces '
                 'golden/tokenizer-cases.json on the real tokenizer.model.', 'cases': tok_cases},
        indent=1, ensure_ascii=False) + '\n')

    (out / 'cases').mkdir()
    cases_meta = []
    for case, tensors, rob in run_cases(model, tok, out / 'images'):
        path = out / 'cases' / f'{case["id"]}.safetensors'
        save_np({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
        ids = tensors['input_ids'][0].tolist()
        g, b, s = (tensors[k].tolist() for k in ('greedy.ids', 'beam.ids', 'sample.ids'))
        cases_meta.append({
            'id': case['id'], 'file': f'cases/{case["id"]}.safetensors', 'file_bytes': path.stat().st_size,
            'stages': 'all' if case['full'] else 'slim (no pixel_values, vpm.patch_embed, vpm.pos_embed_resampled, '
                                                  'vpm.blocks.*)',
            'image': case['image'], 'msgs': case['msgs'], 'prompt': ref.chat_prompt(case['msgs'], cfg.query_num),
            'seq_len': len(ids), 'input_ids': ids, 'image_bound': tensors['image_bound'].tolist(),
            'greedy_ids': g, 'greedy_text': ref.decode_answer(g, tok),
            'beam_ids': b, 'beam_text': ref.decode_answer(b, tok),
            'sample_ids': s, 'sample_text': ref.decode_answer(s, tok), 'robustness': rob})
        print(f'{case["id"]}: L={len(ids)} greedy {g} beam {b} sample {s}  robustness {rob}')
    margins = smallest_margins([c['robustness'] for c in cases_meta])
    print('smallest margins:', margins)

    import PIL
    import safetensors
    import sentencepiece
    import timm
    from PIL import features
    manifest = {
        'what': 'minicpmv-ts parity fixtures on the bundled tiny random-weight model weights/tiny, written by '
                'reference/make_fixtures.py from the independent PyTorch reference reference/minicpmv_ref.py '
                '(which reproduces the original code\'s golden tiny-a to <= 2e-6 relative per stage and its '
                'greedy/beam ids exactly; reference/check_golden.py).',
        'seed': {'weights': args.seed, 'sample': SAMPLE_SEED, 'tokenizer_corpus': 20261126, 'images': 11},
        'versions': {'python': platform.python_version(), 'torch': torch.__version__, 'timm': timm.__version__,
                     'numpy': np.__version__, 'pillow': PIL.__version__,
                     'libjpeg': features.version('jpg'), 'sentencepiece': sentencepiece.__version__,
                     'safetensors': safetensors.__version__},
        'model': {'dir': 'weights/tiny (repository root)', 'config': {**TINY, 'vocab_size': vocab},
                  'derived': {'vision_blocks_run': cfg.vision_blocks_run, 'vision_mlp_hidden': cfg.vision_mlp_hidden,
                              'resampler_heads': cfg.hidden_size // 128, 'llm_head_dim': cfg.head_dim,
                              'logit_divisor': cfg.logit_divisor, 'residual_scale': cfg.residual_scale},
                  'weights': 'random, rounded to bf16 once and stored as BF16 only; the reference runs in fp32 on '
                             'those values, so an F32 conversion (minicpmv convert --dtype f32) gives the same '
                             'outputs', 'bytes': (wdir / 'model.safetensors').stat().st_size,
                  'sha256': hashlib.sha256((wdir / 'model.safetensors').read_bytes()).hexdigest(),
                  'init': recipe},
        'run': {'dtype': 'float32', 'attention': 'eager', 'new_tokens': NEW_TOKENS,
                'logits_positions': f'last {LOGITS_LAST}',
                'greedy': 'argmax with KV cache; stops after emitting eos (kept)',
                'beam': {'num_beams': 3, 'repetition_penalty': 1.2, 'length_penalty': 1.0, 'early_stopping': False,
                         'semantics': 'transformers 4.36 (SPEC 6.1); ids as generate returns them'},
                'sample': {'temperature': 0.6, 'top_k': 100, 'top_p': 0.8, 'seed': SAMPLE_SEED,
                           'rng': 'mulberry32(seed), one draw u per step (src/model/rng.ts)',
                           'draw': 'warpers temperature -> top-k -> top-p (transformers 4.36, fp32); weights '
                                   'exp(s - max) in float64 over kept tokens; x = u * sum; walk from the highest '
                                   'score down (ties: higher id first), x -= w, first token with x <= 0'}},
        'smallest_margins': {**margins, 'units': 'greedy_gap: logits; beam gaps: summed log-probs; sample_u and '
                                                 'sample_top_p: probability; sample_kept_max: tokens kept by '
                                                 'top-k/top-p at the widest step (top-k gaps matter only at 100)'},
        'tolerances': {
            'policy': '|a - e| <= atol + rtol * |e|; integer keys exact',
            'regenerate_with_reference': {'rtol': 1e-5, 'atol': 1e-5,
                                          'note': 'dump_activations.py on weights/tiny vs these cases; '
                                                  'other CPUs sum in another order (seen: 1.7e-6 abs)'},
            'stages': [
                {'stage': 'preprocessing', 'keys': 'pixel_values', 'rtol': 0, 'atol': 1e-6},
                {'stage': 'patch embedding', 'keys': 'vpm.patch_embed,vpm.pos_embed_resampled', 'rtol': 1e-5,
                 'atol': 1e-5},
                {'stage': 'vision tower', 'keys': 'vpm.blocks.*,vpm.norm', 'rtol': 1e-4, 'atol': 1e-4},
                {'stage': 'resampler', 'keys': 'resampler*', 'rtol': 1e-4, 'atol': 1e-4},
                {'stage': 'embeddings', 'keys': 'inputs_embeds', 'rtol': 1e-4, 'atol': 1e-4},
                {'stage': 'language model', 'keys': 'llm.model.*', 'rtol': 1e-4, 'atol': 1e-4},
                {'stage': 'logits', 'keys': 'logits,greedy.topk_logits', 'rtol': 1e-4, 'atol': 1e-3}],
            'stages_source': 'mirrors src/parity/tolerances.ts STAGE_TOLERANCES at generation time',
        },
        'images': images,
        'tokenizer': {'files': ['weights/tiny/tokenizer.model', 'weights/tiny/tokenizer_config.json',
                                'weights/tiny/special_tokens_map.json'],
                      'vocab_size': vocab, 'sha256': hashlib.sha256(tok_bytes).hexdigest(),
                      'layout': 'unk 0, bos 1, eos 2, user-defined 3..108 (<SEP> 3, <CLS> 4, \\n 5, \\t 6, '
                                '<image> 101 .. </quad> 108, others <reserved_k>), bytes 109..364, BPE pieces',
                      'cases': 'tokenizer-cases.json'},
        'cases': cases_meta,
    }
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + '\n')
    for d in (out, wdir):
        total = sum(p.stat().st_size for p in d.rglob('*') if p.is_file())
        print(f'wrote {d} ({total / 1e6:.2f} MB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
