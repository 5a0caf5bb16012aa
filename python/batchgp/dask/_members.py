"""Per-member options sliced to a chunk's members: ``init`` and ``params`` (rows), and priors
whose parameters are per member (shared ones kept), each checked against the whole batch first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._batchgp import BatchGPError
from ..params import Params
from ..priors import Prior
from ..results import FitResult
from ._chunks import _shape_error


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
