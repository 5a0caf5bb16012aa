"""The data of a batchgp.dask request: its checks (shapes, known chunk sizes, chunked along the
member axis only) and the tasks' member ranges (:class:`_Plan`: runs of whole input chunks, small
ones merged), with each task's piece of a per-member array."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from .._batchgp import BatchGPError


def _is_dask(a: Any) -> bool:
    return isinstance(a, da.Array)


def _shape_list(shape: tuple) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _shape_error(name: str, shape: tuple, expected: str) -> BatchGPError:
    # The core's message (batchgp::Error::Shape), so that a rejection reads as the in-process one.
    return BatchGPError(f"array `{name}` has shape {_shape_list(shape)}, expected {expected}")


def _ndim(a: Any) -> int:
    return a.ndim if hasattr(a, "ndim") and hasattr(a, "shape") else np.ndim(a)


def _as_local(a: Any) -> Any:
    """numpy for anything that is not a dask array (lists, torch tensors and so on)."""
    if a is None or _is_dask(a) or isinstance(a, np.ndarray):
        return a
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _check_known(name: str, a: Any) -> None:
    if _is_dask(a) and any(np.isnan(v) for c in a.chunks for v in c):
        raise BatchGPError(
            f"array `{name}` has unknown chunk sizes (shape {a.shape}): call {name}.compute_chunk_sizes() first"
        )


def _check_chunked_on_batch_only(name: str, a: Any) -> None:
    if not _is_dask(a):
        return
    for axis in range(1, a.ndim):
        if len(a.chunks[axis]) > 1:
            rechunk = ", ".join(f"{k}: -1" for k in range(1, a.ndim))
            raise BatchGPError(
                f"array `{name}` is chunked along axis {axis} ({len(a.chunks[axis])} chunks of "
                f"{a.chunks[axis]}); batchgp.dask splits a batch along its member axis 0 only: "
                f"rechunk it with {name}.rechunk({{{rechunk}}})"
            )


class _Plan:
    """The member ranges of the tasks: [(start, stop)], each a run of whole input chunks."""

    def __init__(self, chunks: tuple, merge_below: int | None) -> None:
        self.chunks = tuple(int(c) for c in chunks)
        bounds = np.cumsum((0,) + self.chunks)
        # Input chunks [i, j) per task; chunks with no member carry no task.
        groups: list[list[int]] = []
        for i, c in enumerate(self.chunks):
            if c == 0:
                continue
            if groups and merge_below and sum(self.chunks[k] for k in groups[-1]) < merge_below:
                groups[-1].append(i)
            else:
                groups.append([i])
        if merge_below and len(groups) > 1 and sum(self.chunks[k] for k in groups[-1]) < merge_below:
            groups[-2].extend(groups.pop())
        self.groups = groups
        self.ranges = [(int(bounds[g[0]]), int(bounds[g[-1] + 1])) for g in groups]

    def pieces(self, a: Any) -> list:
        """Per task, the task's members of a per-member array: a numpy slice, or a delayed
        concatenation of the dask array's blocks."""
        if a is None:
            return [None] * len(self.groups)
        if not _is_dask(a):
            return [a[start:stop] for start, stop in self.ranges]
        blocks = a.to_delayed().reshape(len(a.chunks[0]), -1)[:, 0]
        out = []
        for g in self.groups:
            if len(g) == 1:
                out.append(blocks[g[0]])
            else:
                out.append(dask.delayed(np.concatenate, pure=True)([blocks[i] for i in g]))
        return out


def _plan(arrays: list[tuple[str, Any]], merge_below: int | str | None) -> _Plan:
    """The chunks along the member axis: those of the first dask array among per-member arrays,
    which every other dask array must share. ``"auto"`` is the package's MERGE_BELOW, read at
    the call (so that setting ``batchgp.dask.MERGE_BELOW`` takes effect)."""
    if merge_below == "auto":
        from . import MERGE_BELOW

        merge_below = MERGE_BELOW
    elif isinstance(merge_below, str):
        raise BatchGPError(f"merge_below must be a number of members, None or 'auto', got {merge_below!r}")
    ref_name, ref = None, None
    for name, a in arrays:
        if a is None:
            continue
        _check_chunked_on_batch_only(name, a)
        if _is_dask(a) and ref is None:
            ref_name, ref = name, a
    if ref is None:
        first = next(a for _, a in arrays if a is not None)
        return _Plan((first.shape[0],), merge_below)
    for name, a in arrays:
        if _is_dask(a) and a is not ref and tuple(a.chunks[0]) != tuple(ref.chunks[0]):
            raise BatchGPError(
                f"array `{name}` is chunked {tuple(a.chunks[0])} along the member axis, but `{ref_name}` is "
                f"chunked {tuple(ref.chunks[0])}: chunk every per-member array alike, e.g. "
                f"{name}.rechunk({{0: {ref_name}.chunks[0]}})"
            )
    return _Plan(ref.chunks[0], merge_below)


def _check_data(x: Any, y: Any, mask: Any, yvar: Any) -> tuple[int, int, int, bool]:
    """B, N, D and whether x is shared, with the core's messages for shapes that disagree."""
    if y is None:
        raise BatchGPError("missing array `y`")
    if x is None:
        raise BatchGPError("missing array `x`")
    for name, a in (("x", x), ("y", y), ("mask", mask), ("yvar", yvar)):
        _check_known(name, a)
    if _ndim(y) != 2:
        raise _shape_error("y", y.shape, "(B, N)")
    b, n = (int(s) for s in y.shape)
    xs = tuple(int(s) for s in x.shape)
    shared = len(xs) == 2
    if not ((len(xs) == 3 and xs[:2] == (b, n) and xs[2] >= 1) or (shared and xs[0] == n and xs[1] >= 1)):
        raise _shape_error("x", xs, f"({b}, {n}, D) or ({n}, D) with D >= 1, to match y of shape ({b}, {n})")
    for name, a in (("mask", mask), ("yvar", yvar)):
        if a is not None and tuple(a.shape) != (b, n):
            raise _shape_error(name, tuple(a.shape), f"({b}, {n})")
    return b, n, xs[-1], shared


def _shared(a: Any) -> Any:
    """An array every task reads: one key in the graph, sent to each worker once."""
    if a is None:
        return None
    if _is_dask(a):
        return a.rechunk(a.shape) if a.npartitions > 1 else a
    return dask.delayed(a, pure=True)


def _pieces(x: Any, y: Any, mask: Any, yvar: Any, shared: bool, merge_below: Any, extra: tuple = ()) -> tuple:
    """The plan of a request's per-member arrays (x unless shared, y, mask, yvar, then ``extra``
    as (name, array) pairs) and each task's x, y, mask and yvar."""
    plan = _plan([("x", None if shared else x), ("y", y), ("mask", mask), ("yvar", yvar), *extra], merge_below)
    xs = [_shared(x)] * len(plan.ranges) if shared else plan.pieces(x)
    return plan, xs, plan.pieces(y), plan.pieces(mask), plan.pieces(yvar)


def _compute_now(a: Any) -> Any:
    return a.compute() if _is_dask(a) else a
