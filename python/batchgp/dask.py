"""Batches that outgrow one machine: batchgp on Dask (docs/design.md section 13).

A batch of independent GPs splits along its batch axis: each chunk of members is one task that
runs the in-process call (:func:`batchgp.fit`, :func:`batchgp.mll`, :func:`batchgp.predict`) with
the GIL released, on the active ``dask.distributed`` Client when there is one, else on dask's
default scheduler. The results are identical, member for member, to the in-process call on the
whole batch.

    >>> import dask.array as da, batchgp.dask
    >>> x = da.from_array(x_np, chunks=(10_000, -1, -1))      # (B, N, D), chunked along B only
    >>> y = da.from_array(y_np, chunks=(10_000, -1))          # (B, N), chunked like x
    >>> r = batchgp.dask.fit(x, y, priors={"noise": batchgp.LogNormal(-4.0, 1.0)})   # FitResult
    >>> p = batchgp.dask.predict(x, y, r.params, x_test)      # Prediction of dask arrays
    >>> p.mean[:5].compute()

Arrays
------
x is a dask array (B, N, D) chunked along axis 0 only, or an (N, D) array (numpy or dask)
shared by every member. y (B, N), mask (B, N), yvar (B, N) and per-member test points
x_test (B, M, D) are chunked like x along axis 0 (when x is shared, the first dask array among
y, mask and yvar sets the chunks). A numpy array among them is split along those chunks; a dask
array chunked differently, or chunked along any other axis, is rejected with a
:class:`batchgp.BatchGPError` that says how to rechunk it.

What is split per chunk
-----------------------
Every per-member input follows its members: the data, ``init`` and ``params`` (sliced rows),
priors whose parameters are per member (a list of B numbers, or B lists of D numbers for the
lengthscale; numbers and per-dimension lists are shared), and per-member test points. Restarts
draw from one random stream per member, (seed, member index in the whole batch), so they are
the same whichever chunk a member is in when batchgp.fit can be told the chunk's first member
(see :data:`SUPPORTS_FIRST_MEMBER`).

What is assembled
-----------------
Per-member arrays are concatenated in member order, whatever order the tasks finished in and
however often dask re-ran a task whose worker was lost, so no member is lost or duplicated.
``FitResult.rounds`` (a count over the batch) is the largest over the chunks, which is the
whole batch's count when restarts = 0 (a member's path does not depend on the others). A
rejected request raises the BatchGPError of the chunk that rejected it, its member indices
counted in the whole batch.
"""

from __future__ import annotations

import glob
import inspect
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "batchgp.dask needs dask: pip install 'dask[array]' (and 'dask[distributed]' for a cluster)"
    ) from e

from . import api as _api
from ._batchgp import BatchGPError
from .params import Params
from .priors import Prior
from .results import FitResult, MllResult, Prediction

__all__ = ["SUPPORTS_FIRST_MEMBER", "LazyPrediction", "fit", "from_npz", "mll", "predict"]

MERGE_BELOW: int = 64
"""Chunks of fewer members than this are merged with their neighbours into one task by default:
a task costs dask about a millisecond of scheduling, more than fitting a few small GPs."""

SUPPORTS_FIRST_MEMBER: bool = "first_member" in inspect.signature(_api.fit).parameters
"""Whether this build's :func:`batchgp.fit` takes ``first_member`` (the index of a chunk's first
GP in the whole batch, which keys the restarts' random streams). Without it, a fit with
restarts > 0 over more than one chunk spreads the restarts of members outside the first chunk
differently from the in-process fit, and says so with a RuntimeWarning."""

_PREDICT_FIRST_MEMBER: bool = "first_member" in inspect.signature(_api.predict).parameters


# --------------------------------------------------------------------------------------------
# Chunk plans


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
    if merge_below == "auto":
        merge_below = MERGE_BELOW
    elif isinstance(merge_below, str):
        raise BatchGPError(f"merge_below must be a number of members, None or 'auto', got {merge_below!r}")
    """The chunks along the member axis: those of the first dask array among per-member arrays,
    which every other dask array must share."""
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


# --------------------------------------------------------------------------------------------
# Per-member options sliced to a chunk


def _check_params(params: Params | None, name: str, b: int, d: int) -> None:
    if params is not None and tuple(params.lengthscale.shape) != (b, d):
        raise _shape_error("lengthscale", params.lengthscale.shape, f"({b}, {d})")


def _required_params(params: Any, b: int, d: int) -> Params:
    """``params`` of mll and predict: a Params (or a FitResult) of B members and D dimensions."""
    p = _as_params(params, "params")
    if p is None:
        raise BatchGPError("invalid option `params`: expected a batchgp.Params (or a FitResult), got NoneType")
    _check_params(p, "params", b, d)
    return p


def _as_params(params: Any, name: str) -> Params | None:
    if params is None or isinstance(params, Params):
        return params
    if isinstance(params, FitResult):
        return params.params
    raise BatchGPError(
        f"invalid option `{name}`: expected a batchgp.Params (or a FitResult), got {type(params).__name__}"
    )


def _slice_params(params: Params | None, start: int, stop: int) -> Params | None:
    if params is None:
        return None
    s = slice(start, stop)
    alpha = None if params.alpha is None else params.alpha[s]
    return Params(params.lengthscale[s], params.outputscale[s], params.noise[s], params.mean[s], alpha, params.kernel)


def _check_priors(priors: Any, b: int, d: int) -> None:
    """Per-member prior parameters must cover the whole batch (the core's messages)."""
    if not isinstance(priors, Mapping):
        return
    for target, prior in priors.items():
        if not isinstance(prior, Prior):
            continue
        for pname, a in zip(prior._names, prior._arrays):
            if target == "lengthscale" and a.ndim == 2 and tuple(a.shape) != (b, d):
                got = [int(a.shape[1])] * int(a.shape[0])
                raise BatchGPError(
                    f"invalid prior on lengthscale: `{pname}`: expected B = {b} lists of D = {d} numbers, "
                    f"got lists of lengths {got}"
                )
            if target != "lengthscale" and a.ndim == 1 and a.shape[0] != b:
                raise BatchGPError(
                    f"invalid prior on {target}: `{pname}`: a list must hold B = {b} numbers (one per member), "
                    f"got {a.shape[0]}"
                )


def _slice_priors(priors: Any, start: int, stop: int) -> Any:
    """The priors of members [start, stop): per-member parameters sliced, shared ones kept."""
    if not isinstance(priors, Mapping):
        return priors
    out = {}
    for target, prior in priors.items():
        if not isinstance(prior, Prior):
            out[target] = prior
            continue
        per_member_ndim = 2 if target == "lengthscale" else 1
        values = [a[start:stop] if a.ndim == per_member_ndim else a for a in prior._arrays]
        out[target] = type(prior)(*values)
    return out


# --------------------------------------------------------------------------------------------
# Tasks (run on the workers)

_MEMBER = re.compile(r"\(member (\d+), index")


def _rejected(e: BatchGPError, start: int) -> BatchGPError:
    """The chunk's rejection with member indices counted in the whole batch."""
    msg = _MEMBER.sub(lambda m: f"(member {int(m.group(1)) + start}, index", str(e))
    return BatchGPError(msg)


def _fit_task(start: int, x: Any, y: Any, mask: Any, yvar: Any, init: Any, priors: Any, opts: dict) -> FitResult:
    try:
        return _api.fit(x, y, mask=mask, yvar=yvar, init=init, priors=priors, **opts)
    except BatchGPError as e:
        raise _rejected(e, start) from None


def _mll_task(start: int, x: Any, y: Any, params: Params, mask: Any, yvar: Any, priors: Any, opts: dict) -> MllResult:
    try:
        return _api.mll(x, y, params, mask=mask, yvar=yvar, priors=priors, **opts)
    except BatchGPError as e:
        raise _rejected(e, start) from None


def _predict_task(start: int, x: Any, y: Any, params: Params, x_test: Any, mask: Any, yvar: Any, opts: dict) -> dict:
    try:
        p = _api.predict(x, y, params, x_test, mask=mask, yvar=yvar, **opts)
    except BatchGPError as e:
        raise _rejected(e, start) from None
    return {k: getattr(p, k) for k in Prediction._fields + Prediction._optional}


def _pick(d: dict, key: str) -> Any:
    return d[key]


class LazyPrediction(Prediction):
    """A :class:`batchgp.Prediction` whose arrays are dask arrays (see :func:`predict`).

    ``compute()`` returns the eager Prediction (numpy arrays), running each chunk's task once;
    computing ``p.mean`` and ``p.var`` one after the other would run the tasks twice
    (``dask.compute(p.mean, p.var)`` runs them once).
    """

    def compute(self, **kwargs: Any) -> Prediction:
        """The numpy Prediction: every array from one pass over the tasks."""
        arrays = self._dict()
        keys = list(arrays)
        values = dask.compute(*(arrays[k] for k in keys), **kwargs)
        return Prediction(dict(zip(keys, values)))

    def persist(self, **kwargs: Any) -> LazyPrediction:
        """The same Prediction with its arrays held in (cluster) memory."""
        arrays = self._dict()
        keys = list(arrays)
        values = dask.persist(*(arrays[k] for k in keys), **kwargs)
        return LazyPrediction(dict(zip(keys, values)))

    def __repr__(self) -> str:
        b, m = self.mean.shape
        return f"LazyPrediction(B={b}, M={m}: {self._arrays_text()}; dask arrays in {self.mean.numblocks[0]} chunks)"

    def summary(self, max_rows: int | None = 50) -> str:
        """The eager Prediction's summary (computes it)."""
        return self.compute().summary(max_rows)


# --------------------------------------------------------------------------------------------
# Assembly


def _concat(results: list, cls: type) -> dict:
    """One result's arrays from the chunks' (in member order): per-member arrays concatenated,
    ``rounds`` the largest, anything else (the kernel's name) the first chunk's."""
    out = {}
    for key in cls._fields + cls._optional:
        values = [getattr(r, key) for r in results]
        if values[0] is None:
            out[key] = None
        elif isinstance(values[0], np.ndarray) and values[0].ndim >= 1:
            out[key] = np.concatenate(values, axis=0)
        elif key == "rounds":
            out[key] = max(values)
        else:
            out[key] = values[0]
    return out


def _compute(tasks: list, progress: bool) -> list:
    if not progress:
        return list(dask.compute(*tasks))
    try:
        from distributed import default_client
        from distributed import progress as dist_progress

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*tasks))
    futures = client.compute(tasks)
    dist_progress(futures)
    return client.gather(futures)


def _task_name(kind: str, k: int, token: str) -> str:
    return f"batchgp-{kind}-{token}-{k}"


def _token(*parts: Any) -> str:
    return dask.base.tokenize(*parts, os.urandom(8))


# --------------------------------------------------------------------------------------------
# The public functions


def fit(
    x: Any,
    y: Any,
    *,
    mask: Any = None,
    yvar: Any = None,
    merge_below: int | str | None = "auto",
    **options: Any,
) -> FitResult:
    """:func:`batchgp.fit` over a batch chunked along its member axis, one task per chunk.

    Parameters
    ----------
    x : dask array (B, N, D) chunked along axis 0 only, or array (N, D) shared
    y : dask array (B, N), chunked like x along axis 0 (a numpy array is split alike)
    mask, yvar : array (B, N), optional
        Chunked like y.
    merge_below : int, optional
        Adjacent chunks are merged into one task until each task holds at least this many
        members (the last task joins the one before when short). ``"auto"`` (the default) is
        ``batchgp.dask.MERGE_BELOW`` (64): a task per chunk, except that chunks of fewer members
        than that, too small to repay a task, are merged with their neighbours; ``None`` keeps
        exactly one task per chunk.
    **options
        The options of :func:`batchgp.fit` (kernel, priors, init, fix, optimizer, max_iter,
        restarts, standardize, bounds, seed, backend, precision, progress). ``init`` and
        per-member prior parameters are sliced to each chunk's members. ``progress`` shows
        dask's progress over the tasks.

    Returns
    -------
    FitResult
        numpy arrays over all B members, equal member for member to ``batchgp.fit`` on the
        whole batch; ``rounds`` is the largest over the chunks.
    """
    _api_signature(_api.fit, "fit", options, ("mask", "yvar"))
    x, y, mask, yvar = (_as_local(a) for a in (x, y, mask, yvar))
    b, _, d, shared = _check_data(x, y, mask, yvar)
    init = _as_params(options.pop("init", None), "init")
    _check_params(init, "init", b, d)
    priors = options.pop("priors", None)
    _check_priors(priors, b, d)
    progress = bool(options.pop("progress", False))
    plan = _plan([("x", None if shared else x), ("y", y), ("mask", mask), ("yvar", yvar)], merge_below)

    restarts = options.get("restarts", 0)
    if SUPPORTS_FIRST_MEMBER:
        if "first_member" in options:
            raise TypeError("batchgp.dask.fit sets first_member itself, per chunk")
    elif isinstance(restarts, int) and restarts > 0 and len(plan.ranges) > 1:
        warnings.warn(
            "batchgp.dask.fit with restarts > 0: this build's batchgp.fit cannot be told a chunk's first "
            "member (no `first_member` option), so members outside the first chunk start their restarts "
            "from other points than the in-process fit does",
            RuntimeWarning,
            stacklevel=2,
        )

    xs = [_shared(x)] * len(plan.ranges) if shared else plan.pieces(x)
    ys, ms, vs = plan.pieces(y), plan.pieces(mask), plan.pieces(yvar)
    token = _token("fit", b)
    tasks = []
    for k, (start, stop) in enumerate(plan.ranges):
        opts = dict(options, progress=False)
        if SUPPORTS_FIRST_MEMBER:
            opts["first_member"] = start
        task = dask.delayed(_fit_task, pure=False)(
            start,
            xs[k],
            ys[k],
            ms[k],
            vs[k],
            _slice_params(init, start, stop),
            _slice_priors(priors, start, stop),
            opts,
            dask_key_name=_task_name("fit", k, token),
        )
        tasks.append(task)
    if not tasks:  # B = 0: the in-process call says why that is rejected
        return _api.fit(_compute_now(x), _compute_now(y), mask=_compute_now(mask), yvar=_compute_now(yvar), **options)
    return FitResult(_concat(_compute(tasks, progress), FitResult))


def mll(
    x: Any,
    y: Any,
    params: Params,
    *,
    mask: Any = None,
    yvar: Any = None,
    merge_below: int | str | None = "auto",
    **options: Any,
) -> MllResult:
    """:func:`batchgp.mll` over a batch chunked along its member axis, one task per chunk.

    Parameters
    ----------
    x, y, mask, yvar, merge_below
        As in :func:`fit`.
    params : Params (or a FitResult)
        B members, in memory; sliced per chunk.
    **options
        The options of :func:`batchgp.mll` (kernel, priors, backend, precision); per-member
        prior parameters are sliced per chunk.

    Returns
    -------
    MllResult
        numpy arrays over all B members, equal member for member to ``batchgp.mll``.
    """
    _api_signature(_api.mll, "mll", options, ("params", "mask", "yvar"))
    x, y, mask, yvar = (_as_local(a) for a in (x, y, mask, yvar))
    b, _, d, shared = _check_data(x, y, mask, yvar)
    params = _required_params(params, b, d)
    priors = options.pop("priors", None)
    _check_priors(priors, b, d)
    plan = _plan([("x", None if shared else x), ("y", y), ("mask", mask), ("yvar", yvar)], merge_below)
    xs = [_shared(x)] * len(plan.ranges) if shared else plan.pieces(x)
    ys, ms, vs = plan.pieces(y), plan.pieces(mask), plan.pieces(yvar)
    token = _token("mll", b)
    tasks = [
        dask.delayed(_mll_task, pure=False)(
            start,
            xs[k],
            ys[k],
            _slice_params(params, start, stop),
            ms[k],
            vs[k],
            _slice_priors(priors, start, stop),
            options,
            dask_key_name=_task_name("mll", k, token),
        )
        for k, (start, stop) in enumerate(plan.ranges)
    ]
    if not tasks:
        return _api.mll(_compute_now(x), _compute_now(y), params, mask=_compute_now(mask), yvar=_compute_now(yvar))
    return MllResult(_concat(list(dask.compute(*tasks)), MllResult))


def predict(
    x: Any,
    y: Any,
    params: Params,
    x_test: Any,
    *,
    mask: Any = None,
    yvar: Any = None,
    merge_below: int | str | None = "auto",
    **options: Any,
) -> LazyPrediction:
    """:func:`batchgp.predict` as dask arrays: nothing runs until they are computed.

    Parameters
    ----------
    x, y, mask, yvar, merge_below
        As in :func:`fit`.
    params : Params (or a FitResult)
        B members, in memory; sliced per chunk.
    x_test : array (M, D) shared, or (B, M, D) chunked like x along axis 0 only
    **options
        The options of :func:`batchgp.predict` (kernel, samples, seed, full_covariance,
        backend, precision).

    Returns
    -------
    LazyPrediction
        A Prediction whose arrays are dask arrays: mean, var, var_y, lower, upper (B, M),
        status, jitter (B,), [samples (S, B, M)],
        [covariance (B, M, M)], each a dask array chunked like x along the member axis; one
        task per chunk computes all of them. Computed, they equal ``batchgp.predict``'s arrays
        member for member (samples too when batchgp.predict takes ``first_member``; otherwise
        members outside the first chunk draw from other random streams, with a RuntimeWarning).
    """
    _api_signature(_api.predict, "predict", options, ("params", "x_test", "mask", "yvar"))
    x, y, mask, yvar, x_test = (_as_local(a) for a in (x, y, mask, yvar, x_test))
    b, _, d, shared = _check_data(x, y, mask, yvar)
    params = _required_params(params, b, d)
    if x_test is None:
        raise BatchGPError("missing array `test x`")
    _check_known("x_test", x_test)
    xt_shape = tuple(int(s) for s in x_test.shape)
    if len(xt_shape) == 2 and xt_shape[1] == d:
        test_shared = True
    elif len(xt_shape) == 3 and xt_shape[0] == b and xt_shape[2] == d:
        test_shared = False
    elif len(xt_shape) in (2, 3):
        raise _shape_error("test x", xt_shape, f"(M, {d}) or ({b}, M, {d})")
    else:
        raise _shape_error("test x", xt_shape, "(M, D) or (B, M, D)")
    m = xt_shape[-2]
    plan = _plan(
        [
            ("x", None if shared else x),
            ("y", y),
            ("mask", mask),
            ("yvar", yvar),
            ("x_test", None if test_shared else x_test),
        ],
        merge_below,
    )
    samples = options.get("samples", 0)
    if _PREDICT_FIRST_MEMBER:
        if "first_member" in options:
            raise TypeError("batchgp.dask.predict sets first_member itself, per chunk")
    elif isinstance(samples, int) and samples > 0 and len(plan.ranges) > 1:
        warnings.warn(
            "batchgp.dask.predict with samples > 0: this build's batchgp.predict cannot be told a chunk's first "
            "member (no `first_member` option), so members outside the first chunk draw their samples from "
            "other random streams than the in-process predict does",
            RuntimeWarning,
            stacklevel=2,
        )
    xs = [_shared(x)] * len(plan.ranges) if shared else plan.pieces(x)
    ts = [_shared(x_test)] * len(plan.ranges) if test_shared else plan.pieces(x_test)
    ys, ms, vs = plan.pieces(y), plan.pieces(mask), plan.pieces(yvar)
    full = bool(options.get("full_covariance", False))
    token = _token("predict", b)
    parts: dict[str, list] = {}
    for k, (start, stop) in enumerate(plan.ranges):
        opts = dict(options)
        if _PREDICT_FIRST_MEMBER:
            opts["first_member"] = start
        task = dask.delayed(_predict_task, pure=False)(
            start,
            xs[k],
            ys[k],
            _slice_params(params, start, stop),
            ts[k],
            ms[k],
            vs[k],
            opts,
            dask_key_name=_task_name("predict", k, token),
        )
        c = stop - start
        shapes = {
            "mean": ((c, m), np.float64),
            "var": ((c, m), np.float64),
            "var_y": ((c, m), np.float64),
            "lower": ((c, m), np.float64),
            "upper": ((c, m), np.float64),
            "status": ((c,), np.int64),
            "jitter": ((c,), np.float64),
        }
        if isinstance(samples, int) and samples > 0:
            shapes["samples"] = ((samples, c, m), np.float64)
        if full:
            shapes["covariance"] = ((c, m, m), np.float64)
        for key, (shape, dtype) in shapes.items():
            piece = dask.delayed(_pick, pure=True)(task, key, dask_key_name=f"{_task_name('predict', k, token)}-{key}")
            parts.setdefault(key, []).append(da.from_delayed(piece, shape=shape, dtype=dtype))
    if not parts:
        return _api.predict(
            _compute_now(x),
            _compute_now(y),
            params,
            _compute_now(x_test),
            mask=_compute_now(mask),
            yvar=_compute_now(yvar),
        )
    arrays = {key: da.concatenate(p, axis=1 if key == "samples" else 0) for key, p in parts.items()}
    for key in Prediction._optional:
        arrays.setdefault(key, None)
    return LazyPrediction(arrays)


def _compute_now(a: Any) -> Any:
    return a.compute() if _is_dask(a) else a


def _api_signature(func: Any, name: str, options: dict, named: tuple) -> None:
    """Unknown options fail here, before any task runs, as they would in-process."""
    params = inspect.signature(func).parameters
    for key in options:
        if key not in params or key in ("x", "y") + named:
            raise TypeError(f"batchgp.dask.{name}() got an unexpected keyword argument '{key}'")


# --------------------------------------------------------------------------------------------
# Shards on disk


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
