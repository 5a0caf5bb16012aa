"""Hyperparameters of a batch of GPs, in natural units."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _batchgp as _native
from ._batchgp import BatchGPError
from ._checks import as_array, as_str, option_error, shape_error


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, order="C", copy=True)
    a.flags.writeable = False
    return a


def _vector(value: Any, name: str, b: int) -> np.ndarray:
    a = as_array(value, name)
    if a.ndim == 0:
        a = np.full(b, a, dtype=np.float64)
    if a.shape != (b,):
        raise shape_error(name, a.shape, f"({b},)")
    return _frozen(a)


class Params:
    """Hyperparameters of B GPs in natural units (not logs), with the kernel they are for.

    Parameters
    ----------
    lengthscale : array (B, D)
        ARD lengthscales, > 0.
    outputscale : array (B,) or number
        Outputscale (signal variance) s, > 0. A number is used for every member.
    noise : array (B,) or number
        Gaussian noise variance, > 0.
    mean : array (B,) or number
        Constant mean.
    alpha : array (B,) or number, optional
        Shape of the rational quadratic kernel, > 0; only (and always) for ``kernel="rq"``.
    kernel : str
        ``"rbf"`` (default), ``"matern12"``, ``"matern32"``, ``"matern52"`` or ``"rq"``.

    The arrays are copied and read-only. Values are checked (> 0 and so on) by the call that
    uses them, so a FitResult's params, NaN for failed members, can be held here.
    ``log_lengthscale``, ``log_outputscale``, ``log_noise`` and ``log_alpha`` give the log form
    the CLI's files use; :meth:`from_log` builds Params from it.
    """

    __slots__ = ("_alpha", "_kernel", "_lengthscale", "_mean", "_noise", "_outputscale")

    def __init__(
        self,
        lengthscale: Any,
        outputscale: Any,
        noise: Any,
        mean: Any,
        alpha: Any = None,
        kernel: str = "rbf",
    ) -> None:
        kernel = _native.parse_kernel(as_str("kernel", kernel))
        ls = as_array(lengthscale, "lengthscale")
        if ls.ndim != 2:
            raise shape_error("lengthscale", ls.shape, "(B, D)")
        b = ls.shape[0]
        self._kernel = kernel
        self._lengthscale = _frozen(ls)
        self._outputscale = _vector(outputscale, "outputscale", b)
        self._noise = _vector(noise, "noise", b)
        self._mean = _vector(mean, "mean", b)
        if kernel == "rq":
            if alpha is None:
                raise BatchGPError("missing array `alpha` (the rq kernel needs it)")
            self._alpha = _vector(alpha, "alpha", b)
        else:
            if alpha is not None:
                raise option_error("alpha", f"given for the {kernel} kernel, which has none")
            self._alpha = None

    @classmethod
    def from_log(
        cls,
        log_lengthscale: Any,
        log_outputscale: Any,
        log_noise: Any,
        mean: Any,
        log_alpha: Any = None,
        kernel: str = "rbf",
    ) -> Params:
        """From the log form of the CLI's P.npz: log_lengthscale (B, D), log_outputscale (B,),
        log_noise (B,), mean (B,), [log_alpha (B,)]."""
        ex = lambda v, n: np.exp(as_array(v, n).astype(np.float64))
        alpha = None if log_alpha is None else ex(log_alpha, "log_alpha")
        return cls(
            ex(log_lengthscale, "log_lengthscale"),
            ex(log_outputscale, "log_outputscale"),
            ex(log_noise, "log_noise"),
            mean,
            alpha,
            kernel,
        )

    @property
    def kernel(self) -> str:
        """The kernel's name."""
        return self._kernel

    @property
    def lengthscale(self) -> np.ndarray:
        """(B, D)"""
        return self._lengthscale

    @property
    def outputscale(self) -> np.ndarray:
        """(B,)"""
        return self._outputscale

    @property
    def noise(self) -> np.ndarray:
        """(B,)"""
        return self._noise

    @property
    def mean(self) -> np.ndarray:
        """(B,)"""
        return self._mean

    @property
    def alpha(self) -> np.ndarray | None:
        """(B,) for the rq kernel, else None."""
        return self._alpha

    @property
    def log_lengthscale(self) -> np.ndarray:
        """(B, D) log of the lengthscales."""
        return np.log(self._lengthscale)

    @property
    def log_outputscale(self) -> np.ndarray:
        """(B,)"""
        return np.log(self._outputscale)

    @property
    def log_noise(self) -> np.ndarray:
        """(B,)"""
        return np.log(self._noise)

    @property
    def log_alpha(self) -> np.ndarray | None:
        """(B,) for the rq kernel, else None."""
        return None if self._alpha is None else np.log(self._alpha)

    @property
    def batch_size(self) -> int:
        """B, the number of members."""
        return self._lengthscale.shape[0]

    @property
    def n_dims(self) -> int:
        """D, the number of input dimensions."""
        return self._lengthscale.shape[1]

    def __repr__(self) -> str:
        def fmt(a: np.ndarray) -> str:
            return np.array2string(a, precision=4, threshold=8, edgeitems=2, separator=", ").replace("\n", "")

        parts = [
            f"kernel={self._kernel!r}",
            f"B={self.batch_size}",
            f"D={self.n_dims}",
            f"lengthscale={fmt(self._lengthscale)}",
            f"outputscale={fmt(self._outputscale)}",
            f"noise={fmt(self._noise)}",
            f"mean={fmt(self._mean)}",
        ]
        if self._alpha is not None:
            parts.append(f"alpha={fmt(self._alpha)}")
        return "Params(" + ", ".join(parts) + ")"
