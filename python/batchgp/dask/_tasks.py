"""What runs on the workers (one in-process call per chunk, its rejection renumbered in the whole
batch) and the assembly of the chunks' results in member order; the task names, and the checks of
the options a request passes on."""

from __future__ import annotations

import inspect
import os
import re
import warnings
from typing import Any

import dask
import numpy as np

from .. import api as _api
from .._batchgp import BatchGPError
from ..params import Params
from ..results import FitResult, MllResult, Prediction

SUPPORTS_FIRST_MEMBER: bool = "first_member" in inspect.signature(_api.fit).parameters
"""Whether this build's :func:`batchgp.fit` takes ``first_member`` (the index of a chunk's first
GP in the whole batch, which keys the restarts' random streams). Without it, a fit with
restarts > 0 over more than one chunk spreads the restarts of members outside the first chunk
differently from the in-process fit, and says so with a RuntimeWarning."""


_PREDICT_FIRST_MEMBER: bool = "first_member" in inspect.signature(_api.predict).parameters


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


def _api_signature(func: Any, name: str, options: dict, named: tuple) -> None:
    """Unknown options fail here, before any task runs, as they would in-process."""
    params = inspect.signature(func).parameters
    for key in options:
        if key not in params or key in ("x", "y") + named:
            raise TypeError(f"batchgp.dask.{name}() got an unexpected keyword argument '{key}'")


def _first_member(supported: bool, name: str, options: dict, count: Any, tasks: int, message: str) -> None:
    """A fit's restarts (a predict's samples) draw from streams keyed by the member's index in the
    whole batch: ``first_member`` is set per chunk where ``batchgp.<name>`` takes it (so the caller
    may not), and without it ``count`` > 0 over several tasks warns with ``message``."""
    if supported:
        if "first_member" in options:
            raise TypeError(f"batchgp.dask.{name} sets first_member itself, per chunk")
    elif isinstance(count, int) and count > 0 and tasks > 1:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
