"""A scikit-learn-style estimator over a batch of GPs: a scikit-learn BaseEstimator (clone,
get_params, Pipeline parameters) when scikit-learn is installed, a plain class otherwise."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._batchgp import DEFAULT_RESTARTS, BatchGPError
from ._checks import as_array, as_int, as_optional_array, option_error
from .api import fit as _fit
from .api import predict as _predict
from .params import Params
from .priors import Prior

try:
    from sklearn.base import BaseEstimator as _Base
    from sklearn.exceptions import NotFittedError as _SkNotFitted
except ImportError:  # scikit-learn is optional
    _Base = object
    _SkNotFitted = AttributeError


class NotFittedError(BatchGPError, _SkNotFitted):
    """A BatchGP used before fit: a BatchGPError, and scikit-learn's NotFittedError when it is
    installed."""


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):
        return False


class BatchGP(_Base):
    """B independent exact GPs fitted and used as one estimator, in scikit-learn's style.

    Parameters
    ----------
    kernel : str
        ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"`` or ``"rq"``.
    priors : dict, optional
        As in :func:`batchgp.fit`.
    init, fix, optimizer, max_iter, restarts, standardize, bounds, seed, backend, precision,
    progress
        The options of :func:`batchgp.fit`, with its defaults: ``restarts`` is
        ``batchgp.DEFAULT_RESTARTS`` (3) extra starts per GP, so ``BatchGP().fit(x, y)`` is
        ``batchgp.fit(x, y)``.

    Arrays given to fit, predict, sample_y and score are read as numpy arrays (torch tensors
    too), and the estimator's outputs and fitted attributes are numpy arrays.

    Attributes (after fit)
    ----------------------
    lengthscale_ : (B, D); outputscale_, noise_, mean_ : (B,); alpha_ : (B,) or None
        Fitted hyperparameters in the data's units.
    status_ : (B,) int
        Per member, as in FitResult.status.
    result_ : FitResult
        The whole fit; ``result_.summary()`` prints a table.
    params_ : Params
        The fitted hyperparameters.
    """

    def __init__(
        self,
        kernel: str = "rbf",
        priors: Mapping[str, Prior] | None = None,
        *,
        init: Params | None = None,
        fix: str | Iterable[str] = (),
        optimizer: str = "lbfgs",
        max_iter: int | None = None,
        restarts: int = DEFAULT_RESTARTS,
        standardize: bool = False,
        bounds: tuple[float, float] | dict[str, tuple[Any, Any]] | None = None,
        seed: int = 0,
        backend: str = "auto",
        precision: str = "f64",
        progress: bool = False,
    ) -> None:
        self.kernel = kernel
        self.priors = priors
        self.init = init
        self.fix = fix
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.restarts = restarts
        self.standardize = standardize
        self.bounds = bounds
        self.seed = seed
        self.backend = backend
        self.precision = precision
        self.progress = progress

    @classmethod
    def _param_names(cls) -> list:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments (scikit-learn's protocol)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> BatchGP:
        """Sets constructor arguments (scikit-learn's protocol)."""
        names = self._param_names()
        for k, v in params.items():
            if k not in names:
                raise option_error(k, f"not a parameter of BatchGP (expected one of {', '.join(names)})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={getattr(self, k)!r}" for k in self._param_names() if not _same(getattr(self, k), defaults[k])]
        return f"BatchGP({', '.join(changed)})"

    def fit(
        self,
        x: Any,
        y: Any,
        mask: Any | None = None,
        yvar: Any | None = None,
    ) -> BatchGP:
        """Fit every member.

        Parameters
        ----------
        x : array (B, N, D) or (N, D)
        y : array (B, N)
        mask, yvar : array (B, N), optional

        Returns
        -------
        self
        """
        x, y = as_array(x, "x"), as_array(y, "y")
        mask, yvar = as_optional_array(mask, "mask"), as_optional_array(yvar, "yvar")
        r = _fit(x, y, mask=mask, yvar=yvar, **{k: v for k, v in self.get_params().items()})
        # The training data is kept by reference (no copy) for predict.
        self.x_train_, self.y_train_, self.mask_, self.yvar_ = x, y, mask, yvar
        self.result_ = r
        self.params_ = r.params
        self.lengthscale_ = r.lengthscale
        self.outputscale_ = r.outputscale
        self.noise_ = r.noise
        self.mean_ = r.mean
        self.alpha_ = r.alpha
        self.status_ = r.status
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise NotFittedError("this BatchGP is not fitted yet: call fit(x, y) first")

    def _posterior(self, x_test: Any, **kw: Any):
        self._check_fitted()
        return _predict(
            self.x_train_,
            self.y_train_,
            self.params_,
            as_array(x_test, "x_test"),
            mask=self.mask_,
            yvar=self.yvar_,
            backend=self.backend,
            precision=self.precision,
            **kw,
        )

    def predict(self, x_test: Any, return_std: bool = False, return_cov: bool = False):
        """Posterior mean at test points, and optionally the uncertainty of y.

        Parameters
        ----------
        x_test : array (M, D) or (B, M, D)
        return_std : bool
            Also return the posterior standard deviation of y (noise included), (B, M).
        return_cov : bool
            Also return the posterior covariance of y (noise on the diagonal), (B, M, M).

        Returns
        -------
        mean : (B, M)
        std : (B, M), when return_std
        cov : (B, M, M), when return_cov
        """
        if return_std and return_cov:
            raise option_error("return_cov", "at most one of return_std and return_cov may be true")
        p = self._posterior(x_test, full_covariance=bool(return_cov))
        if return_std:
            return p.mean, np.sqrt(p.var_y)
        if return_cov:
            cov = p.covariance.copy()
            m = cov.shape[1]
            cov[:, np.arange(m), np.arange(m)] += self.noise_[:, None]
            return p.mean, cov
        return p.mean

    def sample_y(self, x_test: Any, n_samples: int = 1, random_state: int = 0) -> np.ndarray:
        """Draws of y from the posterior: f from the posterior plus N(0, noise).

        Parameters
        ----------
        x_test : array (M, D) or (B, M, D)
        n_samples : int
        random_state : int
            Seed; the same seed gives the same draws.

        Returns
        -------
        array (n_samples, B, M)
        """
        n = as_int("n_samples", n_samples, 1)
        seed = as_int("random_state", random_state)
        p = self._posterior(x_test, samples=n, seed=seed)
        rng = np.random.default_rng(seed)
        return p.samples + rng.standard_normal(p.samples.shape) * np.sqrt(self.noise_)[None, :, None]

    def score(self, x_test: Any, y_test: Any, mask: Any | None = None) -> float:
        """The coefficient of determination R^2 of the posterior mean, per member, averaged
        over the members (scikit-learn's ``score`` of a regressor, batch-first).

        Parameters
        ----------
        x_test : array (M, D) or (B, M, D)
        y_test : array (B, M)
        mask : array (B, M), optional
            1 for a point that counts, 0 for padding.

        Returns
        -------
        float
        """
        pred = self.predict(x_test)
        y = as_array(y_test, "y_test").astype(np.float64)
        if y.shape != pred.shape:
            raise BatchGPError(f"array `y_test` has shape {list(y.shape)}, expected {list(pred.shape)}")
        w = np.ones_like(y) if mask is None else (as_array(mask, "mask") != 0).astype(np.float64)
        y, pred = np.where(w > 0, y, 0.0), np.where(w > 0, pred, 0.0)
        n = w.sum(axis=1)
        mean = (w * y).sum(axis=1) / np.maximum(n, 1)
        ss_tot = (w * (y - mean[:, None]) ** 2).sum(axis=1)
        ss_res = (w * (y - pred) ** 2).sum(axis=1)
        # As scikit-learn's r2_score: a constant y scores 1 when predicted exactly, else 0.
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
        return float(r2.mean())
