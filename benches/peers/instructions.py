#!/usr/bin/env python3
"""Instruction counts of two batchgp CLIs on the same commands, under valgrind's callgrind: a
load-independent before/after comparison (benches/results/renovation.md holds one).

It writes seeded data (numpy savez) and hyperparameters for each shape, runs `mll` and `fit
--restarts 0` of each binary on one thread (RAYON_NUM_THREADS=1, so no idle thread spins into
the count), and prints a markdown table: instructions before and after, their ratio, and for fits
the evaluation rounds (from the CLI's summary line), since a fit that takes a different path
costs a different number of rounds.

    python3 benches/peers/instructions.py --before /tmp/base/target/release/batchgp \\
        --after target/release/batchgp --workdir /tmp/instr

Not part of CI.
"""

import argparse
import os
import re
import subprocess

MLL_SHAPES = [(1000, 50, 3), (16, 400, 3)]
FIT_SHAPES = [(200, 50, 3), (8, 150, 3)]
KERNELS = ("rbf", "matern52")


def write_data(path, b, n, d, seed):
    """x uniform on [0, 1]^D per member, y a smooth function of x plus noise 0.1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (b, n, d))
    w = rng.normal(0.0, 1.0, (b, 1, d))
    y = np.sin(3.0 * np.sum(w * x, axis=2)) + 0.1 * rng.normal(0.0, 1.0, (b, n))
    np.savez(path, x=x, y=y)


def write_params(path, b, d):
    """Every member at lengthscale 0.5, outputscale 1, noise 0.01, mean 0 (log form)."""
    import numpy as np

    np.savez(
        path,
        log_lengthscale=np.full((b, d), np.log(0.5)),
        log_outputscale=np.zeros(b),
        log_noise=np.full(b, np.log(0.01)),
        mean=np.zeros(b),
    )


def instructions(exe, args, workdir):
    """Instructions callgrind counts for `exe args`, and the stderr of the run."""
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    out = os.path.join(workdir, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", exe, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    m = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    os.remove(out)
    return int(m.group(1)), p.stderr


def rounds(stderr):
    m = re.search(r"(\d+) evaluation rounds", stderr)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rows = []
    for cmd, shapes in (("mll", MLL_SHAPES), ("fit", FIT_SHAPES)):
        for b, n, d in shapes:
            data = os.path.join(a.workdir, f"D_{b}x{n}x{d}.npz")
            params = os.path.join(a.workdir, f"P_{b}x{d}.npz")
            write_data(data, b, n, d, seed=b * 1000 + n)
            write_params(params, b, d)
            for kernel in KERNELS:
                counts, rs = [], []
                for exe in (a.before, a.after):
                    out = os.path.join(a.workdir, "O.npz")
                    if cmd == "mll":
                        args = ["mll", "--data", data, "--params", params, "--out", out]
                    else:
                        args = ["fit", "--data", data, "--out", out, "--restarts", "0"]
                    args += ["--kernel", kernel, "--backend", "cpu"]
                    count, err = instructions(exe, args, a.workdir)
                    counts.append(count)
                    rs.append(rounds(err))
                    print(f"{cmd} {b}x{n}x{d} {kernel} {exe}: {count} instructions, rounds {rs[-1]}", flush=True)
                rows.append((cmd, (b, n, d), kernel, counts, rs))
    print("\n| command | (B, N, D) | kernel | before | after | after / before | rounds before, after |")
    print("|---|---|---|---|---|---|---|")
    for cmd, shape, kernel, (c0, c1), (r0, r1) in rows:
        r = "" if r0 is None else f"{r0}, {r1}"
        print(f"| {cmd} | {shape} | {kernel} | {c0:.4g} | {c1:.4g} | {c1 / c0:.4f} | {r} |")


if __name__ == "__main__":
    main()
