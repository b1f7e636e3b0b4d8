#!/usr/bin/env python3
"""Check this reference against the golden outputs of the ORIGINAL PyTorch code (../shared/golden beside the repository).

usage: check_golden.py [--golden DIR] [--rtol 1e-5] [--json OUT.json]

DIR defaults to ../shared/golden relative to the repository root. Checks, each printed with its max error:
  * tiny-a: every stage of every case (float keys: max|a-e| / max|e| <= rtol; ids, image_bound exact;
    greedy.ids and beam.ids exact; greedy.topk_ids reported only), derived.safetensors, and that
    resampler.pos_embed equals the sin-cos table this reference builds (bit-exact);
  * preprocess: pixel_values and resized_u8 exact (Pillow bicubic + ToTensor + Normalize);
  * tokenizer-cases.json with DIR/../reference/tokenizer.model: ids and decoded text exact;
  * DIR/../reference: the full-size module tree has the real checkpoint's 694 names and byte count.
Exit status 0 when everything passes, 1 on any failure, 2 when DIR is missing or malformed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minicpmv_ref as ref  # noqa: E402
import stages  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DIAGNOSTIC = {'greedy.topk_ids'}  # lower top-k ranks may swap on near-ties


class Report:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, where: str, key: str, ok: bool, detail: str, **num):
        self.rows.append({'where': where, 'key': key, 'ok': ok, 'detail': detail, **num})
        print(f'{"PASS" if ok else "FAIL"}  {where:28s} {key:36s} {detail}')

    @property
    def failed(self) -> int:
        return sum(not r['ok'] for r in self.rows)


def compare(rep: Report, where: str, golden: dict, mine: dict, rtol: float) -> None:
    for key, e in golden.items():
        if key == 'logits.positions':
            continue
        if key not in mine:
            rep.add(where, key, False, 'missing from the reference output')
            continue
        a = mine[key]
        if key == 'logits' and 'logits.positions' in golden:
            pos = golden['logits.positions'].tolist()
            mpos = mine['logits.positions'].tolist()
            a = a[:, [mpos.index(p) for p in pos]]
        if a.shape != e.shape:
            rep.add(where, key, False, f'shape {list(a.shape)} != golden {list(e.shape)}')
            continue
        if e.dtype.kind in 'iu':
            same = bool(np.array_equal(a, e))
            diag = key in DIAGNOSTIC
            rep.add(where, key, same or diag, 'exact' if same else
                    f'{"DIFF (diagnostic)" if diag else "MISMATCH"} got {a.ravel()[:10].tolist()} '
                    f'golden {e.ravel()[:10].tolist()}')
            continue
        d, r = stages.rel_err(a, e)
        rep.add(where, key, r <= rtol, f'max_abs {d:.3e}  rel {r:.3e}', max_abs=d, rel=r)


def check_tiny_a(rep: Report, gdir: Path, rtol: float) -> None:
    model, cfg = ref.load_model(gdir)
    man = json.loads((gdir / 'manifest.json').read_text())
    # resampler.pos_embed is stored; check our sin-cos construction against it (used by make_fixtures).
    table = ref.sincos_2d(cfg.hidden_size, model.resampler.grid)
    same = np.array_equal(table, model.resampler.pos_embed.detach().numpy())
    rep.add('tiny-a/model', 'resampler.pos_embed == sincos_2d', same, 'bit-exact' if same else 'differs')
    with torch.no_grad():
        derived = {'resampler.pos_embed_resampled': stages.f32(model.resampler.key_pos_embed(1024)),
                   'resampler.ln_q': stages.f32(model.resampler.ln_q(model.resampler.query))}
    compare(rep, 'tiny-a/derived', load_file(str(gdir / 'derived.safetensors')), derived, rtol)
    for case in man['cases']:
        g = load_file(str(gdir / case['file']))
        img = gdir / man['images'][case['image']]['file']
        ids = g['input_ids'][0].tolist()
        bound = ref.image_bound_of(ids, 101, 102, cfg.query_num)  # synthetic ids: <image>=101, </image>=102
        mine, info = stages.run_reference(model, ref.preprocess(ref.load_image(img)), ids, bound,
                                          new_tokens=len(g['greedy.ids']))
        compare(rep, f'tiny-a/{case["id"]}', g, mine, rtol)
        want = case.get('independent_beam_best_score')
        if want is not None:
            d = abs(info['beam']['best_score'] - want)
            rep.add(f'tiny-a/{case["id"]}', 'beam best score', d <= 1e-4, f'{info["beam"]["best_score"]:.6f} '
                    f'vs {want:.6f} (|d| {d:.2e})')
    rgb = gdir / 'images' / 'rocket.jpg.rgb.safetensors'
    if rgb.is_file():
        got = np.asarray(ref.load_image(gdir / 'images' / 'rocket.jpg'))
        same = np.array_equal(got, load_file(str(rgb))['rgb'])
        rep.add('tiny-a/images', 'rocket.jpg decoded rgb', same, 'exact' if same else 'differs (libjpeg?)')


def check_preprocess(rep: Report, pdir: Path) -> None:
    from PIL import Image
    man = json.loads((pdir / 'manifest.json').read_text())
    for im in man['images']:
        g = load_file(str(pdir / im['golden']))
        rgb = ref.load_image(pdir / im['png'])
        px = ref.preprocess(rgb)[0].numpy()
        u8 = np.asarray(rgb.resize((ref.IMAGE_SIZE, ref.IMAGE_SIZE), Image.BICUBIC))
        for key, mine in (('pixel_values', px), ('resized_u8', u8), ('rgb_u8', np.asarray(rgb))):
            if key in g:
                same = mine.shape == g[key].shape and np.array_equal(mine, g[key])
                rep.add(f'preprocess/{im["name"]}', key, same, 'exact' if same else 'differs')


def check_real_names(rep: Report, real: Path) -> None:
    """The full-size module tree (built on the meta device) has exactly the real checkpoint's names, and its
    parameter count x 2 bytes equals the index's bf16 total_size."""
    cfg = ref.Config.load(real / 'config.json')
    with torch.device('meta'):
        sd = ref.MiniCPMV(cfg).state_dict()
    index = json.loads((real / 'model.safetensors.index.json').read_text())
    names, want = set(sd), set(index['weight_map'])
    ok = names == want
    rep.add('reference/index', 'parameter names', ok, f'{len(names)} names' if ok else
            f'missing {sorted(want - names)[:5]}, unexpected {sorted(names - want)[:5]}')
    n = sum(t.numel() for t in sd.values())
    total = index.get('metadata', {}).get('total_size')
    rep.add('reference/index', 'bf16 bytes', 2 * n == total, f'{n} params x 2 = {2 * n}, index {total}')


def check_tokenizer(rep: Report, cases_file: Path, model_file: Path) -> None:
    tok = ref.Tokenizer(model_file)
    for i, c in enumerate(json.loads(cases_file.read_text())['cases']):
        ids = tok.encode(c['text'])
        text = tok.decode(ids)
        ok = ids == c['ids'] and text == c['decoded']
        rep.add('tokenizer', f'case {i} {c["text"][:24]!r}', ok, 'ids+decode exact' if ok else
                f'ids {ids[:12]} vs {c["ids"][:12]}; decoded {text!r} vs {c["decoded"]!r}')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--golden', default=str(REPO.parent / 'shared' / 'golden'))
    ap.add_argument('--rtol', type=float, default=1e-5)
    ap.add_argument('--json', default=None, help='write per-key results here')
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    gdir = Path(args.golden)
    if not (gdir / 'tiny-a' / 'manifest.json').is_file():
        print(f'check_golden: {gdir} has no tiny-a/manifest.json', file=sys.stderr)
        return 2
    rep = Report()
    try:
        check_tiny_a(rep, gdir / 'tiny-a', args.rtol)
        if (gdir / 'preprocess' / 'manifest.json').is_file():
            check_preprocess(rep, gdir / 'preprocess')
        real = gdir.parent / 'reference'
        if (real / 'model.safetensors.index.json').is_file():
            check_real_names(rep, real)
        tok_model = real / 'tokenizer.model'
        if (gdir / 'tokenizer-cases.json').is_file() and tok_model.is_file():
            check_tokenizer(rep, gdir / 'tokenizer-cases.json', tok_model)
        else:
            print(f'note: tokenizer cases skipped ({tok_model} or tokenizer-cases.json missing)')
    except (ref.RefError, KeyError, json.JSONDecodeError) as e:
        print(f'check_golden: malformed golden data: {type(e).__name__}: {e}', file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(rep.rows, indent=1))
    n = len(rep.rows)
    print(f'check_golden: {n - rep.failed} passed, {rep.failed} failed (rtol {args.rtol:g})')
    return 1 if rep.failed else 0


if __name__ == '__main__':
    sys.exit(main())
