"""PyTorch rival for bench/run.ts: the reference model (minicpmv_ref.py) on CPU in fp32, or in bf16 as the
original card runs it (`--dtype bf16`: to_model_dtype, the original's casts), on the same checkpoint,
prompt shape and phases as bench/measure.ts. Prints one JSON object with the same keys.

  reference/.venv/bin/python reference/bench.py --model DIR --threads 2 [--dtype fp32|bf16] [--reps 2] [--steps 8]

Phases (each timed after a warm-up; medians): load; image encode (448x448); prefill of the 80-token chat
prompt (logits for the last position only, as the project's prefill); greedy steps and beam-3 steps after
an 80-position and a 1000-position prefill (a beam step is the 3-row decoder step plus the cache reorder
that transformers' beam search runs each step, `_reorder_cache` = index_select of every layer); greedy
decode after 100 and 2000 positions; peak RSS after each part.

Loading builds the model on the meta device and assigns the checkpoint's tensors (fp32: widened; bf16: as
stored) shard by shard, so the weights exist once in memory."""
import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minicpmv_ref as ref  # noqa: E402


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def checkpoint_files(model_dir: Path):
    index = model_dir / 'model.safetensors.index.json'
    if index.is_file():
        return sorted({model_dir / f for f in json.loads(index.read_text())['weight_map'].values()})
    return [model_dir / 'model.safetensors']


def load(model_dir: Path, dtype: torch.dtype):
    from safetensors import safe_open
    cfg = ref.Config.load(model_dir / 'config.json')
    with torch.device('meta'):
        model = ref.MiniCPMV(cfg)
    want = model.state_dict()
    state = {}
    for f in checkpoint_files(model_dir):
        with safe_open(str(f), framework='pt') as st:
            for k in st.keys():
                state[k] = st.get_tensor(k).to(dtype)
    missing = sorted(set(want) - set(state))
    if missing:
        raise SystemExit(f'{model_dir}: missing {missing[:5]}')
    model.load_state_dict(state, strict=True, assign=True)
    model.llm.model._rope = ref.rope_tables(cfg, 0)
    model = ref.to_model_dtype(model, dtype)
    return model.eval(), cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--dtype', choices=['fp32', 'bf16'], default='fp32')
    ap.add_argument('--reps', type=int, default=2)
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--long', type=int, default=1000, help='the long context of the step measurements')
    ap.add_argument('--longest', type=int, default=2000, help='the context of the last decode measurement (0: skip)')
    ap.add_argument('--decode-only', action='store_true', help='load, prefill 80 positions, time greedy steps (bench/contention.ts)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == 'bf16' else torch.float32
    t0 = time.perf_counter()
    model, cfg = load(Path(a.model), dtype)
    load_ms = (time.perf_counter() - t0) * 1000
    load_peak = peak_gib()
    S = 448
    px = torch.sin(torch.arange(3 * S * S, dtype=torch.float32) * 0.001).mul(0.9).reshape(1, 3, S, S)
    V, Q = cfg.vocab_size, cfg.query_num
    ids = [1, 95396, 4194, 95388, 101] + [0] * Q + [102, 5, 5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388]
    ids = torch.tensor([[t % V for t in ids]])
    bound = torch.tensor([[5, 5 + Q]])
    llm = model.llm
    med = statistics.median
    out = {'implementation': f'pytorch-reference-{a.dtype}', 'torch': torch.__version__, 'threads': a.threads, 'dtype': a.dtype,
           'loadMs': load_ms, 'loadPeakGiB': load_peak}

    def logits_last(h):
        return llm.lm_head(h[:, -1:] / cfg.logit_divisor).float()

    def prefill(e, cache):
        t = time.perf_counter()
        h = llm.model(e, cache)
        tok = int(logits_last(h)[0, -1].argmax())
        return tok, (time.perf_counter() - t) * 1000

    def greedy_steps(cache, tok, n):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            h = llm.model(llm.embed(torch.tensor([[tok]])), cache)
            tok = int(logits_last(h)[0, -1].argmax())
            times.append((time.perf_counter() - t) * 1000)
        return tok, times

    def beam_steps(cache, tok, n):
        cache.reorder(torch.zeros(3, dtype=torch.long))  # the prompt's cache for 3 beams, as generate expands it
        times = []
        toks = torch.tensor([[tok], [tok + 1], [tok + 2]]) % V
        for _ in range(n):
            t = time.perf_counter()
            h = llm.model(llm.embed(toks), cache)
            top = logits_last(h)[:, -1].argmax(-1)
            cache.reorder(torch.tensor([0, 0, 1]))  # one beam dropped, one forked
            toks = top.view(3, 1)
            times.append((time.perf_counter() - t) * 1000)
        return times

    def random_prompt(n):
        g = torch.Generator().manual_seed(n)
        return llm.embed(torch.randint(0, V, (1, n), generator=g))

    if a.decode_only:
        with torch.no_grad():
            cache = ref.KVCache(cfg.num_hidden_layers)
            tok, _ = prefill(random_prompt(80), cache)
            _, g = greedy_steps(cache, tok, a.steps + 2)
        out['greedyStepMs'] = med(g[2:])
        print(json.dumps(out))
        return
    with torch.no_grad():
        enc, pre = [], []
        for r in range(a.reps + 1):
            t = time.perf_counter()
            vis = model.vision(px)
            t_enc = (time.perf_counter() - t) * 1000
            e = model.inputs_embeds(ids, bound, vis)
            _, t_pre = prefill(e, ref.KVCache(cfg.num_hidden_layers))
            if r:
                enc.append(t_enc)
                pre.append(t_pre)
        out.update({'encodeMs': med(enc), 'prefillTokens': ids.shape[1], 'prefillMs': med(pre),
                    'prefillTokPerS': ids.shape[1] * 1000 / med(pre)})
        # 80 positions: greedy steps (from position 80 on; the median is the step at ~84), then beams.
        for ctx, key in ((ids.shape[1], 'short'), (a.long, 'long')):
            cache = ref.KVCache(cfg.num_hidden_layers)
            tok, _ = prefill(e if ctx == ids.shape[1] else random_prompt(ctx), cache)
            tok, g = greedy_steps(cache, tok, a.steps + 2)
            b = beam_steps(cache, tok, a.steps + 2)
            out[f'greedyStepMs_{key}'] = med(g[2:])
            out[f'beam3StepMs_{key}'] = med(b[2:])
            out[f'context_{key}'] = ctx
            out[f'peakGiB_{key}'] = peak_gib()
            del cache
        # Greedy decode after 100 and after `longest` positions, one step of each in turn (as bench/measure.ts).
        ctxs = [100, a.longest] if a.longest > 0 else [100]
        caches = [ref.KVCache(cfg.num_hidden_layers) for _ in ctxs]
        toks = [prefill(random_prompt(ctx), c)[0] for ctx, c in zip(ctxs, caches)]
        times = [[] for _ in ctxs]
        for _ in range(a.steps + 2):
            for i, c in enumerate(caches):
                toks[i], g = greedy_steps(c, toks[i], 1)
                times[i].append(g[0])
        out['decodeMs_100'] = med(times[0][2:])
        if a.longest > 0:
            out['decodeMs_longest'] = med(times[1][2:])
            out['longest'] = a.longest
        del caches
        # The steps writing positions 254..259 (bench/measure.ts: where a chunk-grown cache copies itself).
        cache = ref.KVCache(cfg.num_hidden_layers)
        tok, _ = prefill(random_prompt(252), cache)
        _, g = greedy_steps(cache, tok, 8)
        out['worstStepMs_256'] = max(g[2:])
        out['worstStepMedianMs_256'] = med(g[2:])
        del cache
    out['peakGiB'] = peak_gib()
    out['decodeMsPerToken'] = out['greedyStepMs_short']
    out['decodeTokPerS'] = 1000 / out['greedyStepMs_short']
    print(json.dumps(out))


if __name__ == '__main__':
    main()
