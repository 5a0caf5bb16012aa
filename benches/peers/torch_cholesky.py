"""torch.linalg.cholesky (cuSOLVER's batched potrf) on the GPU, timed with CUDA events, at the
shapes benches/gpu.rs times batchgp's chol kernels: the reference for the "Cholesky at least
1.5x / 3x cuSOLVER on the same card" targets.

The matrices are the same kind batchgp factorises (an RBF Gram matrix of uniform points in
[0, 1]^3 plus noise, per member), built on the device; the timed region is one
torch.linalg.cholesky_ex of the whole batch (no host synchronisation for the info check), median
of R after warm-ups, with the inputs rotated among several batches where they fit, so the L2
cache does not serve them.

    python3 benches/peers/torch_cholesky.py [--json PATH]
"""
import argparse
import json
import statistics

import torch

SHAPES = [(64, 2048), (10_000, 64), (1000, 256), (100_000, 32)]


def spd(b, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.rand(b, n, 3, generator=g, device="cuda", dtype=torch.float64)
    d2 = torch.cdist(x, x).square()
    k = torch.exp(-0.5 * d2 / 0.25) + 0.05 * torch.eye(n, device="cuda", dtype=torch.float64)
    return k.to(dtype)


def time_chol(a_sets, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for a in a_sets:
        torch.linalg.cholesky_ex(a)
    torch.cuda.synchronize()
    ms = []
    for r in range(reps):
        a = a_sets[r % len(a_sets)]
        start.record()
        torch.linalg.cholesky_ex(a)
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    return statistics.median(ms)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None)
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    rows = []
    for b, n in SHAPES:
        for dtype in (torch.float64, torch.float32):
            size = b * n * n * (8 if dtype == torch.float64 else 4)
            sets = max(1, min(3, int(6e9 // max(size, 1))))
            a_sets = [spd(b, n, dtype, s) for s in range(sets)]
            ms = time_chol(a_sets, args.reps)
            name = "f64" if dtype == torch.float64 else "f32"
            rows.append(dict(b=b, n=n, dtype=name, ms=ms, members_per_s=b / (ms * 1e-3)))
            print(f"torch.linalg.cholesky {name} b{b}_n{n}: {ms:.4f} ms  {b / (ms * 1e-3):.3e} members/s")
            del a_sets
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(torch=torch.__version__, gpu=torch.cuda.get_device_name(0), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
