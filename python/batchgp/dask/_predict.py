"""batchgp.dask's :func:`predict`: the posterior as dask arrays (:class:`LazyPrediction`), one
task per chunk of members computing all of its arrays."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from .. import api as _api
from .._batchgp import BatchGPError
from ..params import Params
from ..results import Prediction
from ._chunks import _as_local, _check_data, _check_known, _compute_now, _pieces, _shape_error, _shared
from ._members import _required_params, _slice_params
from ._tasks import _PREDICT_FIRST_MEMBER, _api_signature, _first_member, _pick, _predict_task, _task_name, _token


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
    plan, xs, ys, ms, vs = _pieces(
        x, y, mask, yvar, shared, merge_below, extra=(("x_test", None if test_shared else x_test),)
    )
    samples = options.get("samples", 0)
    _first_member(
        _PREDICT_FIRST_MEMBER,
        "predict",
        options,
        samples,
        len(plan.ranges),
        "batchgp.dask.predict with samples > 0: this build's batchgp.predict cannot be told a chunk's first "
        "member (no `first_member` option), so members outside the first chunk draw their samples from "
        "other random streams than the in-process predict does",
    )
    ts = [_shared(x_test)] * len(plan.ranges) if test_shared else plan.pieces(x_test)
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
