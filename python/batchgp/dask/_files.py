"""Training data from .npz shards on disk (:func:`from_npz`): only the headers are read when the
dask arrays are made; each shard is read by the task that needs it."""

from __future__ import annotations

import glob
import os
import zipfile
from collections.abc import Iterable

import dask
import dask.array as da
import numpy as np

from .._batchgp import BatchGPError
from ._chunks import _shape_list


def _npy_header(z: zipfile.ZipFile, member: str) -> tuple[tuple, np.dtype]:
    with z.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:  # pragma: no cover - numpy writes 1.0 or 2.0 headers for numeric arrays
            f.close()
            with np.load(z.filename) as npz:
                a = npz[member[:-4]]
                return a.shape, a.dtype
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _read_shard(path: str, key: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    with np.load(path) as f:
        if key not in f.files:
            raise BatchGPError(f"missing array `{key}` in {path}")
        a = f[key]
    if key == "x" and a.ndim == 2 and len(shape) == 3:  # shared x in this shard: every member's
        a = np.broadcast_to(a.astype(dtype, copy=False), shape)
    else:
        a = a.astype(dtype, copy=False)
    if a.shape != shape:
        raise BatchGPError(
            f"{path}: array `{key}` has shape {_shape_list(a.shape)} now, {_shape_list(shape)} when listed"
        )
    return a


def _ones(shape: tuple, dtype: np.dtype) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def from_npz(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple:
    """Training data from .npz shards (the CLI's D.npz: x, y, optional mask), one chunk each.

    Parameters
    ----------
    paths : a path, a glob pattern (``"shards/*.npz"``, sorted), or a list of paths
        Shard k holds members of the batch in order: y (B_k, N), x (B_k, N, D) or (N, D)
        shared by the shard's members, optional mask (B_k, N). Every shard has the same N and D.

    Returns
    -------
    (x, y, mask)
        Dask arrays (B, N, D), (B, N) and (B, N) (mask None when no shard has one; a shard
        without a mask counts every point as observed), one chunk per shard. Only the arrays'
        headers are read here; a shard is read by the task that needs it. Arrays of different
        dtypes across shards are converted to a common one.
    """
    if isinstance(paths, (str, os.PathLike)):
        p = os.fspath(paths)
        listed = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
        if not listed:
            raise BatchGPError(f"{p}: no file matches")
    else:
        listed = [os.fspath(p) for p in paths]
    if not listed:
        raise BatchGPError("invalid option `paths`: no shard given")

    heads = []
    for path in listed:
        try:
            with zipfile.ZipFile(path) as z:
                names = {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}
                for key in ("x", "y"):
                    if key not in names:
                        raise BatchGPError(f"missing array `{key}` in {path}")
                heads.append(
                    {key: _npy_header(z, names[key]) for key in ("x", "y", "mask") if key in names}
                    | {"mtime": os.path.getmtime(path)}
                )
        except (OSError, zipfile.BadZipFile) as e:
            raise BatchGPError(f"{path}: {e}") from None

    n = d = None
    for path, h in zip(listed, heads):
        (ys, _), (xs, _) = h["y"], h["x"]
        if len(ys) != 2:
            raise BatchGPError(f"{path}: array `y` has shape {_shape_list(ys)}, expected (B, N)")
        bk, nk = ys
        if not ((len(xs) == 3 and xs[:2] == (bk, nk) and xs[2] >= 1) or (len(xs) == 2 and xs[0] == nk and xs[1] >= 1)):
            raise BatchGPError(
                f"{path}: array `x` has shape {_shape_list(xs)}, expected ({bk}, {nk}, D) or ({nk}, D) with D >= 1, "
                f"to match y of shape ({bk}, {nk})"
            )
        if "mask" in h and h["mask"][0] != (bk, nk):
            raise BatchGPError(f"{path}: array `mask` has shape {_shape_list(h['mask'][0])}, expected ({bk}, {nk})")
        if n is None:
            n, d = nk, xs[-1]
        elif (nk, xs[-1]) != (n, d):
            raise BatchGPError(
                f"{path}: N = {nk}, D = {xs[-1]}, but {listed[0]} has N = {n}, D = {d}: every shard needs the same N and D"
            )

    def dtype_of(key: str) -> np.dtype | None:
        kinds = [h[key][1] for h in heads if key in h]
        return np.result_type(*kinds) if kinds else None

    dt = {key: dtype_of(key) for key in ("x", "y", "mask")}
    xs_, ys_, ms_ = [], [], []
    for path, h in zip(listed, heads):
        bk = h["y"][0][0]
        shapes = {"x": (bk, n, d), "y": (bk, n), "mask": (bk, n)}
        for key, out in (("x", xs_), ("y", ys_), ("mask", ms_)):
            if key == "mask" and dt["mask"] is None:
                continue
            token = dask.base.tokenize(path, h["mtime"], key, str(dt[key]))
            if key in h:
                piece = dask.delayed(_read_shard, pure=True)(
                    path, key, dt[key], shapes[key], dask_key_name=f"batchgp-npz-{key}-{token}"
                )
            else:
                piece = dask.delayed(_ones, pure=True)(shapes[key], dt[key], dask_key_name=f"batchgp-npz-{key}-{token}")
            out.append(da.from_delayed(piece, shape=shapes[key], dtype=dt[key]))
    x = da.concatenate(xs_, axis=0)
    y = da.concatenate(ys_, axis=0)
    mask = da.concatenate(ms_, axis=0) if ms_ else None
    return x, y, mask
