"""The functions of the package: fit, mll, predict, sample_prior, info, set_num_threads.

Shapes: B members (GPs), N training points each (padded; see ``mask``), D input dimensions,
M test points. x is (B, N, D), or (N, D) shared by every member; y is (B, N). Arrays may be
anything numpy.asarray accepts (numpy arrays of f64 or f32 in any memory order, torch CPU
tensors, lists); results are numpy f64 arrays. All numerical work runs in Rust with the GIL
released. A rejected request raises :class:`batchgp.BatchGPError` (a ValueError) with the
CLI's one-line message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

import numpy as np

from . import _batchgp as _native
from . import _progress
from ._batchgp import BatchGPError
from ._checks import (
    as_array,
    as_bounds,
    as_fix,
    as_int,
    as_optional_array,
    as_optional_str,
    as_seed,
    as_str,
    option_error,
)
from .params import Params
from .priors import Prior
from .results import FitResult, MllResult, Prediction

ArrayLike = Any
PriorsArg = Optional[Mapping[str, Prior]]


def _as_priors(priors: Any) -> list:
    """[(hyperparameter, family, [parameter arrays])] for the extension."""
    if priors is None:
        return []
    if not isinstance(priors, Mapping):
        raise BatchGPError(
            "invalid prior on priors: expected a dict like {'lengthscale': batchgp.Gamma(2.0, 1.0)}, "
            f"got {type(priors).__name__}"
        )
    out = []
    for target, prior in priors.items():
        if not isinstance(target, str):
            raise BatchGPError(f"invalid prior on {target!r}: the key must be a hyperparameter name")
        if not isinstance(prior, Prior):
            raise BatchGPError(
                f"invalid prior on {target}: expected a batchgp prior (Gamma, LogNormal, Normal, HalfCauchy or "
                f"Uniform), got {type(prior).__name__}"
            )
        out.append((target, prior.family, list(prior._arrays)))
    return out


def _as_params(params: Any, name: str = "params"):
    """A Params (a FitResult stands for its params)."""
    if isinstance(params, Params):
        return params
    if isinstance(params, FitResult):
        return params.params
    raise option_error(name, f"expected a batchgp.Params (or a FitResult), got {type(params).__name__}")


def _as_optional_params(params: Any, name: str):
    return None if params is None else _as_params(params, name)


def fit(
    x: ArrayLike,
    y: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str = "rbf",
    priors: PriorsArg = None,
    init: Params | None = None,
    fix: str | Iterable[str] = (),
    optimizer: str = "lbfgs",
    max_iter: int | None = None,
    restarts: int = 0,
    standardize: bool = False,
    bounds: tuple[float, float] | None = None,
    seed: int = 0,
    backend: str = "auto",
    precision: str = "f64",
    progress: bool = False,
    first_member: int = 0,
) -> FitResult:
    """Fit every member's hyperparameters by maximum likelihood, or MAP with priors.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
        Training inputs, per member or shared.
    y : array (B, N)
        Training targets.
    mask : array (B, N), optional
        1 (or True) for an observed point, 0 for padding; padded entries of x and y may hold
        anything, NaN included.
    yvar : array (B, N), optional
        Known noise variance per point (>= 0), added to the learned noise.
    kernel : str
        ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"`` or ``"rq"``.
    priors : dict, optional
        ``{"lengthscale" | "outputscale" | "noise" | "mean" | "alpha": prior}``, priors from
        :class:`Gamma`, :class:`LogNormal`, :class:`Normal`, :class:`HalfCauchy`,
        :class:`Uniform`, their parameters a number, a D list, a B list or (B, D).
    init : Params, optional
        Starting point (B members, the same kernel); default: lengthscale = std of x per
        dimension, outputscale = var(y), noise = var(y) / 10, mean = mean(y), per member.
    fix : str or iterable of str
        Hyperparameters held at their initial value: ``"lengthscale"``, ``"outputscale"``,
        ``"noise"``, ``"mean"``, ``"alpha"``.
    optimizer : str
        ``"lbfgs"`` (default) or ``"adam"``.
    max_iter : int, optional
        Iterations per member (default 1000).
    restarts : int
        Extra starts per GP from spread points; the best is kept.
    standardize : bool
        Fit on y standardised per member; results are in the data's units.
    bounds : (low, high), optional
        Box on every positive hyperparameter, as scikit-learn's bounds (0 < low < high).
    seed : int
        Seed of the restarts' spread.
    backend : str
        ``"auto"`` (the GPU when usable), ``"cpu"`` or ``"cuda"``.
    precision : str
        ``"f64"`` or ``"f32"``.
    progress : bool
        Show progress (a tqdm bar when tqdm is installed, else lines on stderr).
    first_member : int
        Index of the first member in a larger batch split into chunks: restarts then start
        where the whole batch's would (``batchgp.dask`` passes it per chunk).

    Returns
    -------
    FitResult
        Hyperparameters (B, D) / (B,), mll, log_prior, objective, status, reason, jitter,
        iterations (B,), and ``params`` for predict.

    Raises
    ------
    BatchGPError
        For a rejected request. KeyboardInterrupt (Ctrl-C) stops the fit.
    """
    return _progress.run_fit(
        progress,
        lambda rep: _native.fit(
            as_array(x, "x"),
            as_array(y, "y"),
            as_optional_array(mask, "mask"),
            as_optional_array(yvar, "yvar"),
            as_str("kernel", kernel),
            _as_priors(priors),
            _as_optional_params(init, "init"),
            as_fix(fix),
            as_str("optimizer", optimizer),
            None if max_iter is None else as_int("max_iter", max_iter),
            as_int("restarts", restarts),
            bool(standardize),
            as_bounds(bounds),
            as_seed(seed),
            as_str("backend", backend),
            as_str("precision", precision),
            rep,
            as_int("first_member", first_member),
        ),
        FitResult,
    )


def mll(
    x: ArrayLike,
    y: ArrayLike,
    params: Params,
    *,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str | None = None,
    priors: PriorsArg = None,
    backend: str = "auto",
    precision: str = "f64",
) -> MllResult:
    """The exact marginal log-likelihood, log prior, objective and gradient at ``params``.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
    y : array (B, N)
    params : Params
        B members (a FitResult stands for its ``params``).
    mask, yvar : array (B, N), optional
        As in :func:`fit`.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    priors : dict, optional
        As in :func:`fit`: the objective is mll + log prior.
    backend, precision : str
        As in :func:`fit`.

    Returns
    -------
    MllResult
        mll, log_prior, objective, status, jitter (B,); grad_log_lengthscale (B, D),
        grad_log_outputscale, grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)]: the
        gradient of the objective.
    """
    return MllResult(
        _native.mll(
            as_array(x, "x"),
            as_array(y, "y"),
            _as_params(params),
            as_optional_array(mask, "mask"),
            as_optional_array(yvar, "yvar"),
            as_optional_str("kernel", kernel),
            _as_priors(priors),
            as_str("backend", backend),
            as_str("precision", precision),
        )
    )


def predict(
    x: ArrayLike,
    y: ArrayLike,
    params: Params,
    x_test: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str | None = None,
    samples: int = 0,
    seed: int = 0,
    full_covariance: bool = False,
    backend: str = "auto",
    precision: str = "f64",
    first_member: int = 0,
) -> Prediction:
    """The posterior of every member at test points.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
    y : array (B, N)
    params : Params
        B members (a FitResult stands for its ``params``).
    x_test : array (M, D) or (B, M, D)
        Test points, shared or per member.
    mask, yvar : array (B, N), optional
        As in :func:`fit`.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    samples : int
        Posterior samples of f to draw (0: none); reproducible for a ``seed``.
    full_covariance : bool
        Also return the posterior covariance of f, (B, M, M).
    backend, precision : str
        As in :func:`fit`.
    first_member : int
        Index of the first member in a larger batch split into chunks: samples then equal the
        whole batch's (``batchgp.dask`` passes it per chunk).

    Returns
    -------
    Prediction
        mean, var (of f), var_y (of y), lower, upper (B, M); status, jitter (B,);
        [samples (S, B, M)], [covariance (B, M, M)].
    """
    return Prediction(
        _native.predict(
            as_array(x, "x"),
            as_array(y, "y"),
            _as_params(params),
            as_array(x_test, "x_test"),
            as_optional_array(mask, "mask"),
            as_optional_array(yvar, "yvar"),
            as_optional_str("kernel", kernel),
            as_int("samples", samples),
            as_seed(seed),
            bool(full_covariance),
            as_str("backend", backend),
            as_str("precision", precision),
            as_int("first_member", first_member),
        )
    )


def sample_prior(
    x: ArrayLike,
    params: Params,
    *,
    kernel: str | None = None,
    samples: int = 1,
    seed: int = 0,
    noise: bool = False,
    backend: str = "auto",
    precision: str = "f64",
) -> np.ndarray:
    """Draws from the GP prior of every member (a teacher GP).

    Parameters
    ----------
    x : array (N, D) or (B, N, D)
        Inputs, shared or per member.
    params : Params
        B members.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    samples : int
        Draws per member (>= 1).
    seed : int
        Reproducible for a seed (one random stream per member).
    noise : bool
        Add N(0, noise) to each draw: draws of y rather than f.
    backend, precision : str
        As in :func:`fit`.

    Returns
    -------
    array (samples, B, N)
    """
    out = _native.sample_prior(
        as_array(x, "x"),
        _as_params(params),
        as_optional_str("kernel", kernel),
        as_int("samples", samples),
        as_seed(seed),
        bool(noise),
        as_str("backend", backend),
        as_str("precision", precision),
    )
    return out["samples"]


def info() -> dict:
    """What this build and machine offer.

    Returns
    -------
    dict
        ``version``; ``backends`` (usable: ``["cpu"]`` or ``["cpu", "cuda"]``);
        ``default_backend`` (what ``"auto"`` picks); ``gpu`` (the CUDA device, or None);
        ``cuda`` ("usable" or why not); ``kernels`` (the CUDA kernels embedded in this build)
        and ``kernel_targets``; ``driver`` (the driver probe); ``cpu``; ``threads``.
    """
    return dict(_native.info())


def set_num_threads(n: int) -> None:
    """Run all later numerical work on ``n`` threads (n >= 1; default: one per core, or
    RAYON_NUM_THREADS)."""
    _native.set_num_threads(as_int("n", n, 1))
