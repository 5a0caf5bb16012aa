"""Argument checking before the Rust call: turning what the user passed into what the extension
takes, with messages in the CLI's style ("invalid option `name`: ...", "array `name` ...").

Arrays: f64 and f32 numpy arrays pass through unchanged, whatever their memory order, so an f64
array reaches the extension without a copy; torch tensors are read through ``.numpy()`` (a view
for CPU tensors); anything else numpy.asarray accepts is converted to f64.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ._batchgp import BatchGPError

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_U64_MAX = 2**64 - 1


def option_error(name: str, reason: str) -> BatchGPError:
    return BatchGPError(f"invalid option `{name}`: {reason}")


def shape_error(name: str, shape: tuple, expected: str) -> BatchGPError:
    return BatchGPError(f"array `{name}` has shape {list(shape)}, expected {expected}")


def as_array(a: Any, name: str) -> np.ndarray:
    """An f64 or f32 array for the extension: no copy for f64/f32 numpy arrays."""
    if type(a) is np.ndarray:
        dt = a.dtype
        if dt == _F64 or dt == _F32:
            return a
    elif type(a).__module__.startswith("torch"):
        try:
            a = a.detach().cpu().resolve_conj().resolve_neg().numpy()
        except Exception as e:  # noqa: BLE001 - any failure is a rejected input
            raise BatchGPError(f"array `{name}` could not be read from the tensor: {e}") from None
    try:
        arr = np.asarray(a)
    except Exception as e:  # noqa: BLE001
        raise BatchGPError(f"array `{name}` is not an array of numbers: {e}") from None
    dt = arr.dtype
    if dt == _F64 or dt == _F32:
        return arr
    if dt.kind in "biuf" or dt.kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise BatchGPError(f"array `{name}` is not an array of numbers: {e}") from None
    raise BatchGPError(f"array `{name}` is not an array of real numbers (dtype {dt})")


def as_optional_array(a: Any, name: str) -> np.ndarray | None:
    return None if a is None else as_array(a, name)


def as_int(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise option_error(name, f"expected an integer, got {value!r}") from None
    if v < low:
        raise option_error(name, f"must be >= {low}, got {v}")
    if high is not None and v > high:
        raise option_error(name, f"must be <= {high}, got {v}")
    return v


def as_seed(value: Any) -> int:
    return as_int("seed", value, 0, _U64_MAX)


def as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise option_error(name, f"expected a string, got {value!r}")
    return value


def as_optional_str(name: str, value: Any) -> str | None:
    return None if value is None else as_str(name, value)


def as_fix(fix: Any) -> list:
    if fix is None:
        return []
    if isinstance(fix, str):
        return [fix]
    try:
        names = list(fix)
    except TypeError:
        raise option_error("fix", f"expected hyperparameter names, got {fix!r}") from None
    for f in names:
        if not isinstance(f, str):
            raise option_error("fix", f"expected hyperparameter names, got {f!r}")
    return names


def as_bounds(bounds: Any) -> tuple | list | None:
    """(low, high) for the single box; [(name, low, high)] for bounds per hyperparameter."""
    if bounds is None:
        return None
    if isinstance(bounds, dict):
        try:
            return [(as_str("bounds", t), as_array(lo, f"bounds {t} low"), as_array(hi, f"bounds {t} high"))
                    for t, (lo, hi) in bounds.items()]
        except (TypeError, ValueError):
            raise option_error("bounds", f"expected {{name: (low, high)}}, got {bounds!r}") from None
    try:
        low, high = bounds
        return (float(low), float(high))
    except (TypeError, ValueError):
        raise option_error("bounds", f"expected (low, high), got {bounds!r}") from None
