"""PyTorch baseline for bench/run.ts: the reference model (minicpmv_ref.py) in
fp32 on CPU, on the same checkpoint and prompt shape as bench/measure.ts.
Prints one JSON object with the same keys.

  reference/.venv/bin/python reference/bench.py --model DIR --threads 2 [--reps 3] [--decode-tokens 32]

Loading builds the model on the meta device and assigns the checkpoint's
tensors (widened to fp32) shard by shard, so the weights exist once in memory.
Like this project's prefill, the prefill computes logits for the last position only."""
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


def load(model_dir: Path):
    from safetensors import safe_open
    cfg = ref.Config.load(model_dir / 'config.json')
    with torch.device('meta'):
        model = ref.MiniCPMV(cfg)
    want = model.state_dict()
    state = {}
    for f in checkpoint_files(model_dir):
        with safe_open(str(f), framework='pt') as st:
            for k in st.keys():
                state[k] = st.get_tensor(k).float()
    missing = sorted(set(want) - set(state))
    if missing:
        raise SystemExit(f'{model_dir}: missing {missing[:5]}')
    model.load_state_dict(state, strict=True, assign=True)
    model.llm.model._rope = ref.rope_tables(cfg, 0)
    return model.eval(), cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--decode-tokens', type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, cfg = load(Path(a.model))
    load_ms = (time.perf_counter() - t0) * 1000
    load_peak = peak_gib()
    S = 448
    px = torch.sin(torch.arange(3 * S * S, dtype=torch.float32) * 0.001).mul(0.9).reshape(1, 3, S, S)
    V, Q = cfg.vocab_size, cfg.query_num
    ids = [1, 95396, 4194, 95388, 101] + [0] * Q + [102, 5, 5856, 1410, 1377, 1358, 3766, 74, 95396, 10850, 95388]
    ids = torch.tensor([[t % V for t in ids]])
    bound = torch.tensor([[5, 5 + Q]])
    llm = model.llm
    enc, pre, dec = [], [], []
    with torch.no_grad():
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            vis = model.vision(px)
            t_enc = time.perf_counter() - t0
            e = model.inputs_embeds(ids, bound, vis)
            cache = ref.KVCache(cfg.num_hidden_layers)
            t0 = time.perf_counter()
            h = llm.model(e, cache)
            logits = llm.lm_head(h[:, -1:] / cfg.logit_divisor).float()
            t_pre = time.perf_counter() - t0
            tok = int(logits[0, -1].argmax())
            t0 = time.perf_counter()
            for _ in range(a.decode_tokens):
                h = llm.model(llm.embed(torch.tensor([[tok]])), cache)
                tok = int(llm.lm_head(h / cfg.logit_divisor).float()[0, -1].argmax())
            t_dec = (time.perf_counter() - t0) / a.decode_tokens
            if r == 0:
                continue
            enc.append(t_enc * 1000)
            pre.append(t_pre * 1000)
            dec.append(t_dec * 1000)
    med = statistics.median
    print(json.dumps({
        'implementation': 'pytorch-reference', 'torch': torch.__version__, 'threads': a.threads,
        'loadMs': load_ms, 'loadPeakGiB': load_peak, 'encodeMs': med(enc), 'prefillTokens': ids.shape[1],
        'prefillMs': med(pre), 'prefillTokPerS': ids.shape[1] * 1000 / med(pre), 'decodeMsPerToken': med(dec),
        'decodeTokPerS': 1000 / med(dec), 'peakGiB': peak_gib(), 'reps': a.reps,
    }))


if __name__ == '__main__':
    main()
