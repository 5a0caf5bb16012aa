"""Sparse variational GPs (docs/design.md section 11): fit, elbo and predict for a batch of
B SVGPs, each with its own M inducing inputs, whitened variational distribution and
hyperparameters.

Member b has inducing inputs Z_b (M, D) and q(v_b) = N(q_mu_b, S_b), S_b = q_sqrt_b q_sqrt_b^T,
with u_b = L_b v_b and L_b L_b^T = k(Z_b, Z_b) + jitter. The ELBO is

    elbo_b = c sum_i [ -0.5 log(2 pi noise_b) - ((y_i - mu_i)^2 + var_f_i) / (2 noise_b) ]
             - 0.5 (tr S + q_mu^T q_mu - M - log|S|)

(c = 1 on the full data, n_b / S on a mini-batch of S points). Hyperparameters are natural
values (lengthscale, not its log), as in :class:`batchgp.Params`.

    >>> import numpy as np, batchgp
    >>> x = np.linspace(0, 1, 200)[:, None]
    >>> y = np.sin(6 * x[:, 0] + np.arange(3)[:, None])
    >>> r = batchgp.svgp.fit(x, y, num_inducing=16, steps=300)
    >>> p = batchgp.svgp.predict(r.params, np.linspace(0, 1, 50)[:, None])
    >>> p.mean.shape
    (3, 50)

``backend="auto"`` runs SVGPs on the CPU: the CUDA SVGP kernels pass the host emulation but have
not yet run on a GPU, so they run only with ``backend="cuda"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _batchgp as _native
from . import _progress
from ._checks import (
    as_array,
    as_fix,
    as_int,
    as_optional_array,
    as_optional_str,
    as_seed,
    as_str,
    option_error,
)
from .api import ArrayLike, PriorsArg, _as_priors
from .params import SvgpParams
from .results import ElboResult, Prediction, SvgpResult

__all__ = ["ElboResult", "SvgpParams", "SvgpResult", "elbo", "fit", "predict"]


def _as_svgp_params(params: Any, name: str = "params") -> SvgpParams:
    """An SvgpParams (an SvgpResult stands for its params)."""
    if isinstance(params, SvgpParams):
        return params
    if isinstance(params, SvgpResult):
        return params.params
    raise option_error(name, f"expected a batchgp.svgp.SvgpParams (or an SvgpResult), got {type(params).__name__}")


def _as_lr(lr: Any) -> float:
    try:
        v = float(lr)
    except (TypeError, ValueError):
        raise option_error("lr", f"expected a number, got {lr!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise option_error("lr", f"must be > 0, got {v}")
    return v


def fit(
    x: ArrayLike,
    y: ArrayLike,
    *,
    num_inducing: int | None = None,
    z: ArrayLike | None = None,
    init: SvgpParams | None = None,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str = "rbf",
    priors: PriorsArg = None,
    batch_size: int | None = None,
    steps: int = 1000,
    lr: float = 0.05,
    optimizer: str = "adam",
    fix: str | Iterable[str] = (),
    seed: int = 0,
    backend: str = "auto",
    precision: str = "f64",
    progress: bool = False,
) -> SvgpResult:
    """Fit every member's SVGP (inducing inputs, variational distribution, hyperparameters)
    by maximising the ELBO, or ELBO + log prior with priors.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
        Training inputs, per member or shared.
    y : array (B, N)
        Training targets.
    num_inducing : int, optional
        M, inducing points per member, chosen by k-means++ on each member's observed x
        (default min(N, 64)).
    z : array (M, D) or (B, M, D), optional
        Starting inducing inputs instead of k-means++ (q = N(0, I) and the data-driven
        hyperparameters of :func:`batchgp.fit`).
    init : SvgpParams, optional
        The whole starting point (an SvgpResult stands for its params); not with ``z``.
    mask, yvar : array (B, N), optional
        As in :func:`batchgp.fit`.
    kernel : str
        ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"`` or ``"rq"``; must agree
        with ``init``'s kernel.
    priors : dict, optional
        As in :func:`batchgp.fit` (MAP on the hyperparameters).
    batch_size : int, optional
        Mini-batch size S per member and step (adam only); the data term is scaled by n_b / S.
        Reproducible for a ``seed``.
    steps : int
        Optimiser steps per member (default 1000).
    lr : float
        Adam's learning rate (default 0.05).
    optimizer : str
        ``"adam"`` (default) or ``"lbfgs"`` (full data only).
    fix : str or iterable of str
        Held at their starting values: ``"z"``, ``"lengthscale"``, ``"outputscale"``,
        ``"noise"``, ``"mean"``, ``"alpha"``.
    seed : int
        Seed of k-means++ and of the mini-batches.
    backend, precision : str
        As in :func:`batchgp.fit`, except that ``"auto"`` is the CPU for SVGPs for now.
    progress : bool
        Show progress (a tqdm bar when tqdm is installed, else lines on stderr).

    Returns
    -------
    SvgpResult
        z, q_mu, q_sqrt, the hyperparameters, elbo, log_prior, objective, status, reason,
        jitter, iterations, loss (T, B), and ``params`` (an SvgpParams) for predict/elbo.

    Raises
    ------
    BatchGPError
        For a rejected request. KeyboardInterrupt (Ctrl-C) stops the fit.
    """
    return _progress.run_fit(
        progress,
        lambda rep: _native.svgp_fit(
            as_array(x, "x"),
            as_array(y, "y"),
            as_optional_array(mask, "mask"),
            as_optional_array(yvar, "yvar"),
            as_str("kernel", kernel),
            _as_priors(priors),
            None if init is None else _as_svgp_params(init, "init"),
            as_optional_array(z, "z"),
            None if num_inducing is None else as_int("num_inducing", num_inducing, 1),
            as_fix(fix),
            as_str("optimizer", optimizer),
            as_int("steps", steps),
            _as_lr(lr),
            None if batch_size is None else as_int("batch_size", batch_size, 1),
            as_seed(seed),
            as_str("backend", backend),
            as_str("precision", precision),
            rep,
        ),
        SvgpResult,
    )


def elbo(
    x: ArrayLike,
    y: ArrayLike,
    params: SvgpParams,
    *,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str | None = None,
    priors: PriorsArg = None,
    backend: str = "auto",
    precision: str = "f64",
) -> ElboResult:
    """The ELBO on the full data, log prior, objective and the objective's gradient.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
    y : array (B, N)
    params : SvgpParams
        B members (an SvgpResult stands for its ``params``).
    mask, yvar : array (B, N), optional
        As in :func:`batchgp.fit`.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    priors : dict, optional
        As in :func:`batchgp.fit`: the objective is elbo + log prior.
    backend, precision : str
        As in :func:`fit`.

    Returns
    -------
    ElboResult
        elbo, log_prior, objective, status, jitter (B,); grad_z (B, M, D), grad_q_mu (B, M),
        grad_q_sqrt (B, M, M), grad_log_lengthscale (B, D), grad_log_outputscale,
        grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)] (as the CLI's O.npz).
    """
    return ElboResult(
        _native.svgp_elbo(
            as_array(x, "x"),
            as_array(y, "y"),
            _as_svgp_params(params),
            as_optional_array(mask, "mask"),
            as_optional_array(yvar, "yvar"),
            as_optional_str("kernel", kernel),
            _as_priors(priors),
            as_str("backend", backend),
            as_str("precision", precision),
        )
    )


def predict(
    params: SvgpParams,
    x_test: ArrayLike,
    *,
    kernel: str | None = None,
    samples: int = 0,
    seed: int = 0,
    full_covariance: bool = False,
    backend: str = "auto",
    precision: str = "f64",
) -> Prediction:
    """The SVGP posterior of every member at test points (no training data needed):
    mean m + A^T q_mu and var s - |A|^2 + |q_sqrt^T A|^2 per point, A = L^-1 k(Z, x_test).

    Parameters
    ----------
    params : SvgpParams
        B members (an SvgpResult stands for its ``params``).
    x_test : array (M, D) or (B, M, D)
        Test points, shared or per member.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    samples : int
        Posterior samples of f to draw (0: none); reproducible for a ``seed``.
    full_covariance : bool
        Also return the posterior covariance of f, (B, M, M).
    backend, precision : str
        As in :func:`fit`.

    Returns
    -------
    Prediction
        mean, var (of f), var_y (of y), lower, upper (B, M); status, jitter (B,);
        [samples (S, B, M)], [covariance (B, M, M)].
    """
    return Prediction(
        _native.svgp_predict(
            _as_svgp_params(params),
            as_array(x_test, "x_test"),
            as_optional_str("kernel", kernel),
            as_int("samples", samples),
            as_seed(seed),
            bool(full_covariance),
            as_str("backend", backend),
            as_str("precision", precision),
        )
    )

