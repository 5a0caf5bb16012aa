"""Argument checking before the Rust call: turning what the user passed into what the extension
takes, with messages in the CLI's style ("invalid option `name`: ...", "array `name` ...").

Arrays: f64 and f32 numpy arrays pass through unchanged, whatever their memory order, so an f64
array reaches the extension without a copy; torch tensors (any device, requires_grad or not) are
detached, brought to the CPU and read through ``.numpy()`` (a view of a CPU tensor), then checked
as that numpy array (a float type numpy lacks, bfloat16, is read as f32); anything else
numpy.asarray accepts is converted to f64 when its dtype is a number: integers and floats,
booleans only for a mask (True is not the number 1 elsewhere), never objects or strings (an
object array of "1.5" strings is refused, not parsed). Options follow the same rule: an
integer option takes an int (not True), a number option an int or float.

Masked arrays (numpy.ma): the training data's mask is kept (:func:`as_data`): a masked entry of
y, yvar or x makes that point a masked point. Everywhere else a masked entry cannot be honoured
(test points, parameters, priors, the mask itself) and is refused; a masked array without masked
entries is its data.
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


def _masked(a: Any) -> np.ndarray | None:
    """The mask of a numpy masked array that masks something, else None."""
    if isinstance(a, np.ma.MaskedArray):
        m = np.ma.getmaskarray(a)
        if m.any():
            return m
    return None


def as_array(a: Any, name: str) -> np.ndarray:
    """An f64 or f32 array for the extension: no copy for f64/f32 numpy arrays. Booleans only
    for ``mask``; a masked array only without masked entries (:func:`as_data` keeps the data's)."""
    if isinstance(a, np.ma.MaskedArray):
        if _masked(a) is not None:
            raise BatchGPError(
                f"array `{name}` is a masked array with masked entries, which cannot be honoured here: give "
                "plain values (batchgp.fit, evaluate and predict make masked entries of x, y and yvar masked points)"
            )
        a = np.ma.getdata(a)
    if type(a) is np.ndarray:
        dt = a.dtype
        if dt == _F64 or dt == _F32:
            return a
    elif type(a).__module__.startswith("torch"):
        a = _from_tensor(a, name)
    try:
        arr = np.asarray(a)
    except Exception as e:  # noqa: BLE001
        raise BatchGPError(f"array `{name}` is not an array of numbers: {e}") from None
    dt = arr.dtype
    if dt == _F64 or dt == _F32:
        return arr
    if dt.kind in "iuf" or (dt.kind == "b" and name == "mask"):
        return arr.astype(np.float64)
    if dt.kind == "b":
        raise BatchGPError(f"array `{name}` holds booleans, not numbers (only a mask may be boolean)")
    if dt.kind == "O":
        raise BatchGPError(
            f"array `{name}` is an array of Python objects (dtype object), not of numbers: "
            f"convert it first, e.g. np.asarray({name}, dtype=float)"
        )
    raise BatchGPError(f"array `{name}` is not an array of real numbers (dtype {dt})")


def _from_tensor(t: Any, name: str) -> np.ndarray:
    """A torch tensor's values as numpy: detached, on the CPU, a view of a CPU tensor."""
    try:
        t = t.detach().cpu().resolve_conj().resolve_neg()
        try:
            return t.numpy()
        except TypeError:  # a dtype numpy lacks
            if not t.is_floating_point():
                raise
            return t.float().numpy()
    except Exception as e:  # noqa: BLE001 - any failure is a rejected input
        raise BatchGPError(f"array `{name}` could not be read from the tensor: {e}") from None


def as_optional_array(a: Any, name: str) -> np.ndarray | None:
    return None if a is None else as_array(a, name)


def as_data(x: Any, y: Any, mask: Any, yvar: Any) -> tuple:
    """(x, y, mask, yvar) for the extension, with the masks of masked arrays kept: a masked entry
    of y or yvar (B, N), of x (B, N, D) at (b, i, any d), or of a shared x (N, D) at (i, any d)
    masks point i of member b (of every member for a shared x), combined with ``mask`` (a point
    is observed only where both say so). A mask of a shape that names no point is refused."""
    if not (
        isinstance(x, np.ma.MaskedArray) or isinstance(y, np.ma.MaskedArray) or isinstance(yvar, np.ma.MaskedArray)
    ):
        return as_array(x, "x"), as_array(y, "y"), as_optional_array(mask, "mask"), as_optional_array(yvar, "yvar")
    masks = {name: _masked(a) for name, a in (("x", x), ("y", y), ("yvar", yvar))}
    plain = {
        name: np.ma.getdata(a) if masks[name] is not None else a for name, a in (("x", x), ("y", y), ("yvar", yvar))
    }
    xa, ya = as_array(plain["x"], "x"), as_array(plain["y"], "y")
    ma, va = as_optional_array(mask, "mask"), as_optional_array(plain["yvar"], "yvar")
    if all(m is None for m in masks.values()):
        return xa, ya, ma, va
    if ya.ndim != 2:
        raise shape_error("y", ya.shape, "(B, N)")
    b, n = ya.shape
    if ma is not None and ma.shape != (b, n):
        raise shape_error("mask", ma.shape, f"({b}, {n})")
    hidden = np.zeros((b, n), dtype=bool)
    for name, m in masks.items():
        if m is None:
            continue
        if name == "x" and ((m.ndim == 2 and m.shape[0] == n) or (m.ndim == 3 and m.shape[:2] == (b, n))):
            hidden |= m.any(axis=-1)  # (N,) for a shared x: every member's point i
        elif name != "x" and m.shape == (b, n):
            hidden |= m
        else:
            expected = f"({b}, {n}, D) or ({n}, D)" if name == "x" else f"({b}, {n})"
            raise BatchGPError(
                f"array `{name}` is masked with shape {list(m.shape)}, expected {expected} (the B and N of y): "
                "its mask names no training point"
            )
    observed = np.ones((b, n)) if ma is None else ma
    return xa, ya, np.where(hidden, 0.0, observed), va


def as_int(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise option_error(name, f"expected an integer, got {value!r} (a bool is not a number here)")
    try:
        v = operator.index(value)
    except TypeError:
        raise option_error(name, f"expected an integer, got {value!r}") from None
    if v < low:
        raise option_error(name, f"must be >= {low}, got {v}")
    if high is not None and v > high:
        raise option_error(name, f"must be <= {high}, got {v}")
    return v


def as_float(name: str, value: Any) -> float:
    """A real number (int or float, not a bool or a string)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise option_error(name, f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise option_error(name, f"expected a number, got {value!r}") from None


def as_positive(name: str, value: Any) -> float:
    v = as_float(name, value)
    if not (v > 0 and np.isfinite(v)):
        raise option_error(name, f"must be > 0, got {v}")
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
    except (TypeError, ValueError):
        raise option_error("bounds", f"expected (low, high), got {bounds!r}") from None
    if any(isinstance(v, (bool, np.bool_, str, bytes)) for v in (low, high)):
        raise option_error("bounds", f"expected (low, high), got {bounds!r}")
    try:
        return (float(low), float(high))
    except (TypeError, ValueError):
        raise option_error("bounds", f"expected (low, high), got {bounds!r}") from None
