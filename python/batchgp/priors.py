"""Priors on hyperparameters (docs/design.md section 2): densities on the natural value.

Each parameter broadcasts over the batch: a number (every member, every dimension); for the
lengthscale a list of D numbers (per dimension) or B lists of D numbers, shape (B, D) (per
member and dimension); for outputscale, noise, mean and alpha a list of B numbers (per member).
Pass them to ``fit``/``mll`` as ``priors={"lengthscale": Gamma(...), "outputscale": ...}``.
Parameter values and shapes are checked by the call, which knows B and D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import as_array


class Prior:
    """Base class of the prior families. ``family`` is the name the core and priors files use."""

    family: str = ""
    _names: tuple = ()
    __slots__ = ("_arrays", "_values")

    def __init__(self, *values: Any) -> None:
        self._values = values
        self._arrays = tuple(as_array(v, f"{self.family} {n}") for v, n in zip(values, self._names))

    def __repr__(self) -> str:
        def fmt(v: Any) -> str:
            a = np.asarray(v)
            if a.ndim == 0:
                return repr(float(a))
            return np.array2string(a, precision=6, threshold=8, edgeitems=2, separator=", ").replace("\n", "")

        args = ", ".join(f"{n}={fmt(v)}" for n, v in zip(self._names, self._arrays))
        return f"{type(self).__name__}({args})"


class Gamma(Prior):
    """Gamma(concentration, rate): mean concentration / rate, on (0, inf)."""

    family = "gamma"
    _names = ("concentration", "rate")
    __slots__ = ()

    def __init__(self, concentration: Any, rate: Any) -> None:
        super().__init__(concentration, rate)


class LogNormal(Prior):
    """LogNormal(loc, scale): log(theta) ~ Normal(loc, scale)."""

    family = "lognormal"
    _names = ("loc", "scale")
    __slots__ = ()

    def __init__(self, loc: Any, scale: Any) -> None:
        super().__init__(loc, scale)


class Normal(Prior):
    """Normal(loc, scale), for the mean (or any hyperparameter)."""

    family = "normal"
    _names = ("loc", "scale")
    __slots__ = ()

    def __init__(self, loc: Any, scale: Any) -> None:
        super().__init__(loc, scale)


class HalfCauchy(Prior):
    """HalfCauchy(scale) on [0, inf)."""

    family = "halfcauchy"
    _names = ("scale",)
    __slots__ = ()

    def __init__(self, scale: Any) -> None:
        super().__init__(scale)


class Uniform(Prior):
    """Uniform(low, high): also a hard bound, the optimiser never leaves (low, high)."""

    family = "uniform"
    _names = ("low", "high")
    __slots__ = ()

    def __init__(self, low: Any, high: Any) -> None:
        super().__init__(low, high)
