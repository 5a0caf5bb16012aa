"""Torch tensors out of batchgp.fit, evaluate (mll), predict and sample_prior: where a call's
array outputs go when any of its array arguments is a torch.Tensor (the first tensor's device;
the input's float dtype: float64 for float64 tensors, float32 for float32, float16 and bfloat16), and its result with its numeric
arrays as tensors there. Tensors in are read by _checks.as_array (detached, to the CPU, a view
where numpy can take one).

torch is never imported here: a tensor can only have been given once the caller imported torch,
so a call whose arguments hold none finds it absent from sys.modules or finds no tensor, and its
result is the numpy one, unchanged.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np


class Target(NamedTuple):
    """Where a call's outputs go: the device of its first tensor argument and the float dtype."""

    device: Any
    dtype: Any


def target(arrays: Iterable[Any], precision: Any) -> Target | None:
    """The Target of a call whose array arguments are ``arrays`` (in signature order), or None
    when none is a torch tensor (the result stays numpy)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    tensors = [a for a in arrays if isinstance(a, torch.Tensor)]
    if not tensors:
        return None
    # Floats come back in the input's float dtype (the first floating tensor's: float64, or
    # float32 for float32, float16 and bfloat16); with integer tensors only, by the precision.
    floats = [a.dtype for a in tensors if a.dtype.is_floating_point]
    if floats:
        dtype = torch.float64 if floats[0] == torch.float64 else torch.float32
    else:
        dtype = torch.float32 if precision == "f32" else torch.float64
    return Target(tensors[0].device, dtype)


def tensor(a: np.ndarray, to: Target) -> Any:
    """``a`` as a tensor on ``to.device``: floats as ``to.dtype``, integers as int64, booleans as
    bool. An f64 output for an f64 CPU target shares ``a``'s memory (no copy)."""
    torch = sys.modules["torch"]
    kind = a.dtype.kind
    dtype = to.dtype if kind == "f" else torch.bool if kind == "b" else torch.int64
    t = torch.from_numpy(a if a.flags.writeable else a.copy())
    return t.to(device=to.device, dtype=dtype)


def result(r: Any, to: Target | None) -> Any:
    """Result ``r`` (a FitResult, SvgpResult, MllResult, ElboResult or Prediction) with its numeric
    arrays as tensors at ``to``, or ``r`` itself for None. Everything else is unchanged: kernel,
    starts and rounds, the str arrays reason and outcome, and ``params`` (numpy, as every Params
    holds; predict and another fit's init take it). The tensor result keeps ``r`` as ``_host``,
    which its summary, repr, to_npz and == read."""
    if to is None:
        return r
    out = copy.copy(r)
    out._host = r
    for k in r._fields + r._optional:
        v = getattr(r, k)
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            setattr(out, k, tensor(v, to))
    return out
