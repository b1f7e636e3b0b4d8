"""The machine's limits for bench/run.ts, measured with PyTorch on CPU:
best fp32 matmul GFLOP/s and memory bandwidth (a triad a = b + s*c and a plain
read, over buffers far larger than the caches). Prints one JSON object."""
import argparse
import json
import time

import torch


def best(fn, reps):
    fn()
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mib", type=int, default=1024, help="size of each triad array")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a = torch.randn(1024, 1152)
    b = torch.randn(1152, 4304)
    c, d = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm = max(2 * 1024 * 1152 * 4304 / best(lambda: a @ b, 5), 2 * 2048**3 / best(lambda: c @ d, 5)) / 1e9
    n = args.mib * 2**20 // 4
    x, y, z = torch.empty(n), torch.randn(n), torch.randn(n)
    t = best(lambda: torch.add(y, z, alpha=3.0, out=x), 5)
    triad = 3 * n * 4 / t / 1e9  # bytes moved: read y, read z, write x
    r = best(lambda: y.sum(), 5)
    read = n * 4 / r / 1e9
    print(json.dumps({"matmulGflops": mm, "triadGBs": triad, "readGBs": read, "threads": args.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
