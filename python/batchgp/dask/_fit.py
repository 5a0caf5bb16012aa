"""batchgp.dask's :func:`fit` and :func:`mll`: one in-process call per chunk of members, the
results concatenated in member order."""

from __future__ import annotations

from typing import Any

import dask

from .. import _models
from .. import api as _api
from .._batchgp import BatchGPError
from ..params import Params
from ..results import FitResult, MllResult
from ._chunks import _as_local, _check_data, _compute_now, _pieces
from ._members import _as_params, _check_params, _check_priors, _required_params, _slice_params, _slice_priors
from ._tasks import (
    SUPPORTS_FIRST_MEMBER,
    _api_signature,
    _compute,
    _concat,
    _first_member,
    _fit_task,
    _mll_task,
    _task_name,
    _token,
)


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
        restarts, standardize, bounds, seed, backend, precision, progress) for exact GPs; the
        SVGP's (model='svgp', num_inducing, z, batch_size, an SvgpParams init) are refused with a
        BatchGPError. ``init`` and
        per-member prior parameters are sliced to each chunk's members. ``progress`` shows
        dask's progress over the tasks.

    Returns
    -------
    FitResult
        numpy arrays over all B members, equal member for member to ``batchgp.fit`` on the
        whole batch; ``rounds`` is the largest over the chunks.
    """
    _api_signature(_api.fit, "fit", options, ("mask", "yvar"))
    _exact_only(options)
    x, y, mask, yvar = (_as_local(a) for a in (x, y, mask, yvar))
    b, _, d, shared = _check_data(x, y, mask, yvar)
    init = _as_params(options.pop("init", None), "init")
    _check_params(init, "init", b, d)
    priors = options.pop("priors", None)
    _check_priors(priors, b, d)
    progress = bool(options.pop("progress", False))
    plan, xs, ys, ms, vs = _pieces(x, y, mask, yvar, shared, merge_below)
    _first_member(
        SUPPORTS_FIRST_MEMBER,
        "fit",
        options,
        options.get("restarts", 0),
        len(plan.ranges),
        "batchgp.dask.fit with restarts > 0: this build's batchgp.fit cannot be told a chunk's first "
        "member (no `first_member` option), so members outside the first chunk start their restarts "
        "from other points than the in-process fit does",
    )
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


def _exact_only(options: dict) -> None:
    """batchgp.dask.fit fits exact GPs: the model that :func:`batchgp.fit` would choose (its
    ``model``, its SVGP options, an SvgpParams ``init``) is refused, before any task runs, when it
    is the SVGP, whose chunks this module does not assemble (its ``loss`` runs for as many rounds
    as each chunk took)."""
    own = {k: options[k] for k in ("num_inducing", "z", "batch_size", "restarts", "standardize", "bounds") if k in options}
    if _models.for_fit(options.get("model"), options.get("init"), own) is not _models.EXACT:
        raise BatchGPError(
            "batchgp.dask.fit fits exact GPs only: an SVGP fit (model='svgp', num_inducing, z, batch_size "
            "or an SvgpParams init) is not split into Dask tasks; fit each chunk with batchgp.fit(..., "
            "first_member=<its first member>) instead"
        )


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
    plan, xs, ys, ms, vs = _pieces(x, y, mask, yvar, shared, merge_below)
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
