"""Per-call overhead of the Python package: batchgp.mll at B = 4, N = 10 against the same
evaluation timed inside Rust (the CLI's `mll --repeat R`, which times R evaluations of the
library call on a backend made once, with no Python and no file I/O in the clock).

    python python/benches/mll_overhead.py [path/to/batchgp CLI]

Both are timed in batches of 100 calls; it prints the fastest and the median batch's time per
call of each, and their differences: the binding's overhead (argument checks, numpy views, the
copy into the core's arrays, the GIL released and re-taken, the result dict and object). The
fastest batch is the figure to quote on a busy machine. A timing script, not a test.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import batchgp

B, N, D = 4, 10, 2
BATCH, BATCHES = 100, 200


def main(cli: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (B, N, D))
    y = np.sin(5 * x[..., 0]) + rng.normal(0, 0.1, (B, N))
    params = batchgp.Params(np.full((B, D), 0.4), 1.0, 0.05, 0.0)

    for _ in range(500):
        batchgp.mll(x, y, params, backend="cpu")
    batches = []
    for _ in range(BATCHES):
        t = time.perf_counter()
        for _ in range(BATCH):
            batchgp.mll(x, y, params, backend="cpu")
        batches.append((time.perf_counter() - t) / BATCH)
    python_s = np.array(batches)

    with tempfile.TemporaryDirectory() as tmp:
        data, p, out = (os.path.join(tmp, f) for f in ("D.npz", "P.npz", "O.npz"))
        np.savez(data, x=x, y=y)
        np.savez(
            p,
            log_lengthscale=params.log_lengthscale,
            log_outputscale=params.log_outputscale,
            log_noise=params.log_noise,
            mean=params.mean,
        )
        subprocess.run(
            [
                cli,
                "mll",
                "--data",
                data,
                "--params",
                p,
                "--out",
                out,
                "--backend",
                "cpu",
                "--repeat",
                str(BATCH * BATCHES),
            ],
            check=True,
            capture_output=True,
        )
        with np.load(out) as f:
            rust_s = f["seconds"].reshape(BATCHES, BATCH).mean(axis=1)

    print(f"B = {B}, N = {N}, D = {D}, CPU backend, {batchgp.info()['threads']} threads; us per call")
    print(f"{'':24}{'fastest':>10}{'median':>10}")
    for name, v in (("batchgp.mll (Python)", python_s), ("MllRequest (Rust)", rust_s)):
        print(f"{name:24}{v.min() * 1e6:10.1f}{np.median(v) * 1e6:10.1f}")
    over = (python_s.min() - rust_s.min(), np.median(python_s) - np.median(rust_s))
    print(f"{'overhead':24}{over[0] * 1e6:10.1f}{over[1] * 1e6:10.1f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../target/release/batchgp"))
