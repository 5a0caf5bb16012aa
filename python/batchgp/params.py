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

    def _npz_arrays(self) -> dict:
        """The CLI's files' form: kernel, log_lengthscale, log_outputscale, log_noise, mean,
        [log_alpha] (a log of 0 is -inf, of NaN NaN, without a warning)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            arrays = {
                "kernel": np.array(self._kernel),
                "log_lengthscale": self.log_lengthscale,
                "log_outputscale": self.log_outputscale,
                "log_noise": self.log_noise,
                "mean": self._mean,
            }
            if self._alpha is not None:
                arrays["log_alpha"] = self.log_alpha
        return arrays

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


class SvgpParams:
    """Parameters of B sparse variational GPs (docs/design.md section 11), natural units.

    Parameters
    ----------
    z : array (B, M, D), or (M, D) shared by every member
        Inducing inputs.
    q_mu : array (B, M), optional
        Whitened variational mean (default 0).
    q_sqrt : array (B, M, M), optional
        Lower-triangular factor of the whitened variational covariance S = q_sqrt q_sqrt^T
        (default the identity). Entries above the diagonal are ignored and held as 0.
    hyperparameters : Params
        The kernel's hyperparameters, the noise and the mean of the B members, with the kernel.

    The arrays are copied and read-only; values (finite z, q_mu and q_sqrt, positive
    hyperparameters) are checked by the call that uses them. ``batchgp.svgp.fit`` returns one
    as ``.params``; ``batchgp.svgp.elbo`` and ``batchgp.svgp.predict`` take one, and
    ``batchgp.svgp.fit(init=...)`` starts from one. The hyperparameters are also attributes
    (``lengthscale``, ``outputscale``, ``noise``, ``mean``, ``alpha``, ``kernel`` and their
    logs). :meth:`to_npz` / :meth:`from_npz` write and read the CLI's S.npz.
    """

    __slots__ = ("_hyperparameters", "_q_mu", "_q_sqrt", "_z")

    def __init__(self, z: Any, q_mu: Any = None, q_sqrt: Any = None, *, hyperparameters: Params) -> None:
        if not isinstance(hyperparameters, Params):
            raise option_error("hyperparameters", f"expected a batchgp.Params, got {type(hyperparameters).__name__}")
        b, d = hyperparameters.batch_size, hyperparameters.n_dims
        za = as_array(z, "z")
        if za.ndim == 2:
            za = np.broadcast_to(za, (b, *za.shape))
        if za.ndim != 3 or za.shape[0] != b or za.shape[2] != d or za.shape[1] == 0:
            raise shape_error("z", za.shape, f"({b}, M, {d}) or (M, {d}) with M >= 1 (the hyperparameters' B and D)")
        m = za.shape[1]
        if q_mu is None:
            qm = np.zeros((b, m))
        else:
            qm = as_array(q_mu, "q_mu")
            if qm.shape != (b, m):
                raise shape_error("q_mu", qm.shape, f"({b}, {m})")
        if q_sqrt is None:
            qs = np.broadcast_to(np.eye(m), (b, m, m))
        else:
            qs = as_array(q_sqrt, "q_sqrt")
            if qs.shape != (b, m, m):
                raise shape_error("q_sqrt", qs.shape, f"({b}, {m}, {m})")
            with np.errstate(invalid="ignore"):
                qs = np.tril(qs)
        self._z = _frozen(za)
        self._q_mu = _frozen(qm)
        self._q_sqrt = _frozen(qs)
        self._hyperparameters = hyperparameters

    @classmethod
    def from_npz(cls, path: Any) -> SvgpParams:
        """Reads the CLI's S.npz (``batchgp fit --model svgp --out``): z, q_mu, q_sqrt and the
        hyperparameters in log form, with the kernel (rbf when the file has none)."""
        with np.load(path) as f:
            kernel = str(f["kernel"]) if "kernel" in f.files else "rbf"
            hyp = Params.from_log(
                f["log_lengthscale"],
                f["log_outputscale"],
                f["log_noise"],
                f["mean"],
                f["log_alpha"] if "log_alpha" in f.files else None,
                kernel,
            )
            return cls(f["z"], f["q_mu"], f["q_sqrt"], hyperparameters=hyp)

    def to_npz(self, path: Any) -> None:
        """Writes the CLI's S.npz: kernel, z, q_mu, q_sqrt, log_lengthscale, log_outputscale,
        log_noise, mean, [log_alpha]; ``batchgp elbo --params`` and ``batchgp predict --params``
        read it."""
        from .results import save_npz  # results imports this module

        save_npz(path, self._npz_arrays())

    def _npz_arrays(self) -> dict:
        return {"z": self._z, "q_mu": self._q_mu, "q_sqrt": self._q_sqrt, **self._hyperparameters._npz_arrays()}

    @property
    def z(self) -> np.ndarray:
        """(B, M, D) inducing inputs."""
        return self._z

    @property
    def q_mu(self) -> np.ndarray:
        """(B, M) whitened variational mean."""
        return self._q_mu

    @property
    def q_sqrt(self) -> np.ndarray:
        """(B, M, M) lower-triangular factor of the whitened variational covariance."""
        return self._q_sqrt

    @property
    def hyperparameters(self) -> Params:
        """The hyperparameters (a Params) with the kernel."""
        return self._hyperparameters

    kernel = property(lambda self: self._hyperparameters.kernel, doc="The kernel's name.")
    lengthscale = property(lambda self: self._hyperparameters.lengthscale, doc="(B, D)")
    outputscale = property(lambda self: self._hyperparameters.outputscale, doc="(B,)")
    noise = property(lambda self: self._hyperparameters.noise, doc="(B,)")
    mean = property(lambda self: self._hyperparameters.mean, doc="(B,)")
    alpha = property(lambda self: self._hyperparameters.alpha, doc="(B,) for the rq kernel, else None.")
    log_lengthscale = property(lambda self: self._hyperparameters.log_lengthscale, doc="(B, D)")
    log_outputscale = property(lambda self: self._hyperparameters.log_outputscale, doc="(B,)")
    log_noise = property(lambda self: self._hyperparameters.log_noise, doc="(B,)")
    log_alpha = property(lambda self: self._hyperparameters.log_alpha, doc="(B,) for rq, else None.")

    @property
    def batch_size(self) -> int:
        """B, the number of members."""
        return self._z.shape[0]

    @property
    def num_inducing(self) -> int:
        """M, the inducing points per member."""
        return self._z.shape[1]

    @property
    def n_dims(self) -> int:
        """D, the number of input dimensions."""
        return self._z.shape[2]

    def __repr__(self) -> str:
        h = repr(self._hyperparameters)
        return f"SvgpParams(B={self.batch_size}, M={self.num_inducing}, D={self.n_dims}, hyperparameters={h})"
