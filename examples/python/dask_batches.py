"""A batch of GPs split across Dask workers with batchgp.dask, against the in-process fit.

Fits B GPs (default 1,000,000, N = 32, D = 3) on a dask.distributed LocalCluster on this machine,
one task per chunk of members, and reports members per second next to the in-process
batchgp.fit on the same data; checks that both give the same numbers member for member; then
predicts lazily (dask arrays) and computes a few members. With --shards DIR it first writes the
batch as .npz shards (the CLI's D.npz, one per chunk) and reads them back with
batchgp.dask.from_npz, so no step needs the whole batch in one process's memory.

    pip install ./python "dask[distributed]"        # from the repository root
    python examples/python/dask_batches.py [--members 1000000] [--workers 2] [--chunk 20000]
                                            [--shards out/shards] [--no-compare]

On a real cluster, replace the LocalCluster by `Client("scheduler-address:8786")`: the calls do
not change (the arrays must be readable where the workers run: shards on a shared file system,
or arrays already on the cluster). On several GPUs, dask-cuda's `LocalCUDACluster()` starts one
worker per GPU, each pinned to its device (CUDA_VISIBLE_DEVICES), and backend="auto" then runs
each chunk on its worker's GPU.
"""

import argparse
import os
import time

import batchgp
import batchgp.dask as bd
import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait


def make_batch(members: int, n: int, d: int, chunk: int, seed: int = 0):
    """x (B, N, D) on [0, 1]^D and y (B, N): a smooth function per member plus noise, as dask
    arrays generated chunk by chunk (reproducible for a seed and a chunk size)."""
    rng = da.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (members, n, d), chunks=(chunk, n, d))
    phase = da.arange(members, chunks=chunk)[:, None] * 1e-3
    f = da.sin(3.0 * x[..., 0] + phase) + x[..., 1 % d] * da.cos(2.0 * x[..., -1])
    y = f + rng.normal(0.0, 0.1, (members, n), chunks=(chunk, n))
    return x, y


def write_shards(x, y, folder: str) -> list:
    """One .npz per chunk, written by the workers."""
    os.makedirs(folder, exist_ok=True)

    def save(xb, yb, k):
        path = os.path.join(folder, f"shard{k:05d}.npz")
        np.savez(path, x=xb, y=yb)
        return path

    parts = [
        dask.delayed(save)(xb, yb, k)
        for k, (xb, yb) in enumerate(
            zip(x.to_delayed().ravel(), y.to_delayed().ravel())
        )
    ]
    return list(dask.compute(*parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", type=int, default=1_000_000, help="B, the number of GPs"
    )
    parser.add_argument("--n", type=int, default=32, help="points per GP")
    parser.add_argument("--d", type=int, default=3, help="input dimensions")
    parser.add_argument(
        "--chunk", type=int, default=20_000, help="members per chunk (per task)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of the LocalCluster"
    )
    parser.add_argument(
        "--shards",
        help="write the batch as .npz shards here and read them back with from_npz",
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the in-process fit"
    )
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    per_worker = max(1, cores // args.workers)
    print(
        f"B = {args.members:,} GPs, N = {args.n}, D = {args.d}; chunks of {args.chunk:,}; "
        f"{args.workers} workers x {per_worker} threads on {cores} cores; backend {args.backend}"
    )

    # One task at a time per worker, each running batchgp's own threads over its share of the
    # cores (its Rust work releases the GIL); more tasks per worker would oversubscribe them.
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(batchgp.set_num_threads, per_worker)
        x, y = make_batch(args.members, args.n, args.d, args.chunk)
        if args.shards:
            folder = args.shards
            t = time.perf_counter()
            paths = write_shards(x, y, folder)
            print(
                f"wrote {len(paths)} shards to {folder} in {time.perf_counter() - t:.1f} s"
            )
            x, y, _ = bd.from_npz(os.path.join(folder, "shard*.npz"))
        # Data on the workers first, so that the timing is of the fit alone.
        x, y = client.persist([x, y])
        wait([x, y])

        t = time.perf_counter()
        fitted = bd.fit(x, y, backend=args.backend)
        dt_dask = time.perf_counter() - t
        ok = int(np.sum(fitted.status <= 1))
        print(
            f"dask fit:       {dt_dask:8.1f} s  {args.members / dt_dask:10,.0f} members/s  "
            f"({ok:,} converged, {x.numblocks[0]} tasks)"
        )

        # Lazy prediction at 5 shared test points: nothing runs until computed.
        x_test = np.linspace(0.0, 1.0, 5)[:, None] * np.ones(args.d)
        pred = bd.predict(x, y, fitted, x_test, backend=args.backend)
        print(f"lazy predict:   {pred!r}")
        print(
            "  mean of members 0-2:",
            np.array2string(pred.mean[:3].compute(), precision=3),
        )

        if not args.no_compare:
            xs, ys = dask.compute(x, y)
    if args.no_compare:
        return

    batchgp.set_num_threads(cores)
    t = time.perf_counter()
    whole = batchgp.fit(xs, ys, backend=args.backend)
    dt_local = time.perf_counter() - t
    print(
        f"in-process fit: {dt_local:8.1f} s  {args.members / dt_local:10,.0f} members/s"
    )
    same = whole == fitted
    print(f"same numbers member for member: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
