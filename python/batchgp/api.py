"""The functions of the package: fit, evaluate and predict, one path for every model, the model
chosen by its parameters (a Params: exact GPs; an SvgpParams: sparse variational GPs), with mll
and batchgp.svgp's fit, elbo and predict their names for one model; sample_prior, info,
set_num_threads.

Shapes: B members (GPs), N training points each (padded; see ``mask``), D input dimensions,
M test points. x is (B, N, D), or (N, D) shared by every member; y is (B, N). Arrays may be
anything numpy.asarray accepts (numpy arrays of f64 or f32 in any memory order, lists) or torch
tensors; results are numpy f64 arrays, or torch tensors when an array argument is one
(the Notes of :func:`fit`). All numerical work runs in Rust with the GIL released. A rejected request raises :class:`batchgp.BatchGPError` (a ValueError) with the
CLI's one-line message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

import numpy as np

from . import _batchgp as _native
from . import _models, _progress, _tensors
from ._batchgp import BatchGPError
from ._checks import (
    as_array,
    as_bounds,
    as_data,
    as_fix,
    as_int,
    as_optional_array,
    as_optional_str,
    as_positive,
    as_seed,
    as_str,
    option_error,
)
from .params import Params, SvgpParams
from .priors import Prior
from .results import FitResult, Prediction, SvgpResult

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


def _as_params(params: Any, name: str = "params") -> Params:
    """A Params (a FitResult stands for its params)."""
    return _models.of_params(params, name, (_models.EXACT,))[1]


def fit(
    x: ArrayLike,
    y: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    yvar: ArrayLike | None = None,
    kernel: str = "rbf",
    priors: PriorsArg = None,
    init: Params | SvgpParams | None = None,
    fix: str | Iterable[str] = (),
    optimizer: str | None = None,
    max_iter: int | None = None,
    restarts: int | None = None,
    standardize: bool = False,
    bounds: tuple[float, float] | dict[str, tuple[ArrayLike, ArrayLike]] | None = None,
    seed: int = 0,
    backend: str = "auto",
    precision: str = "f64",
    progress: bool = False,
    first_member: int = 0,
    model: str | None = None,
    num_inducing: int | None = None,
    z: ArrayLike | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
) -> FitResult | SvgpResult:
    """Fit every member by maximum likelihood, or MAP with priors: exact GPs (their
    hyperparameters, by the marginal likelihood) or sparse variational GPs (inducing inputs,
    variational distribution and hyperparameters, by the ELBO; docs/design.md section 11).

    The model is ``model`` when given, else the SVGP when an SVGP option is given
    (``num_inducing``, ``z``, ``batch_size``, or an :class:`SvgpParams` ``init``), else the exact
    GP. An option of the other model is refused.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
        Training inputs, per member or shared.
    y : array (B, N)
        Training targets.
    mask : array (B, N), optional
        1 (or True) for an observed point, 0 for padding; padded entries of x and y may hold
        anything, NaN included. The masked entries of a numpy masked array x, y or yvar are
        padding too (a masked entry of a shared x pads that point in every member).
    yvar : array (B, N), optional
        Known noise variance per point (>= 0), added to the learned noise.
    kernel : str
        ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"`` or ``"rq"``.
    priors : dict, optional
        ``{"lengthscale" | "outputscale" | "noise" | "mean" | "alpha": prior}``, priors from
        :class:`Gamma`, :class:`LogNormal`, :class:`Normal`, :class:`HalfCauchy`,
        :class:`Uniform`, their parameters a number, a D list, a B list or (B, D).
    init : Params or SvgpParams, optional
        Starting point (B members, the same kernel; a fit's result stands for its params).
        Default: lengthscale = std of x per dimension, outputscale = var(y), noise = var(y) / 10,
        mean = mean(y), per member, and for an SVGP q = N(0, I) at k-means++ inducing inputs.
        An SvgpParams selects the SVGP and holds its own z (not with ``z``).
    fix : str or iterable of str
        Held at their starting value: ``"lengthscale"``, ``"outputscale"``, ``"noise"``,
        ``"mean"``, ``"alpha"``, and for an SVGP ``"z"``.
    optimizer : str, optional
        ``"lbfgs"`` or ``"adam"`` (default: lbfgs for exact GPs, adam for SVGPs; an SVGP's
        lbfgs runs on the full data only).
    max_iter : int, optional
        Iterations (optimiser steps) per member (default 1000).
    restarts : int, optional
        Exact GPs: extra starts per GP from spread points; the best is kept (default
        ``DEFAULT_RESTARTS``, 3: the result's ``reached_best`` says how many starts agreed).
    standardize : bool
        Removed: True raises BatchGPError (it did nothing, as every fit already runs on y
        standardised per member and reports in the data's units); False is accepted.
    bounds : (low, high) or {name: (low, high)}, optional
        Exact GPs: box on every positive hyperparameter, as scikit-learn's bounds
        (0 < low < high); or bounds per kind (lengthscale, outputscale, noise, mean, alpha),
        low and high each a number, per dimension (lengthscale) or per member, broadcast as
        prior parameters are (0 <= low < high; ``inf`` for no upper bound).
    seed : int
        Seed of the restarts' spread (SVGP: of k-means++ and the mini-batches).
    backend : str
        ``"auto"`` (the GPU when usable; the CPU for SVGPs for now), ``"cpu"`` or ``"cuda"``.
    precision : str
        ``"f64"`` or ``"f32"``.
    progress : bool
        Show progress (a tqdm bar when tqdm is installed, else lines on stderr).
    first_member : int
        Index of the first member in a larger batch split into chunks: restarts (SVGP:
        k-means++ and mini-batches) then start where the whole batch's would
        (``batchgp.dask`` passes it per chunk).
    model : str, optional
        ``"exact"`` or ``"svgp"``.
    num_inducing : int, optional
        SVGP: M, inducing points per member, chosen by k-means++ on each member's observed x
        (default min(N, 64)).
    z : array (M, D) or (B, M, D), optional
        SVGP: starting inducing inputs instead of k-means++.
    batch_size : int, optional
        SVGP: mini-batch size S per member and step (adam only); the data term is scaled by
        n_b / S. Reproducible for a ``seed``.
    lr : float, optional
        Adam's learning rate (default 0.1 for exact GPs, 0.05 for SVGPs).

    Returns
    -------
    FitResult or SvgpResult
        FitResult (exact GPs): hyperparameters (B, D) / (B,), mll, log_prior, objective,
        status, reason, jitter, iterations (B,), and ``params`` for predict. SvgpResult: z,
        q_mu, q_sqrt, the hyperparameters, elbo, log_prior, objective, status, reason, jitter,
        iterations, loss (T, B), and ``params`` (an SvgpParams).

    Notes
    -----
    Torch tensors: any array argument (x, y, mask, yvar, z; those of :func:`evaluate`,
    :func:`mll`, :func:`predict` and :func:`sample_prior` too, and the arrays a Params or
    SvgpParams is built from) may be a torch tensor on any device, float64 or float32
    (integers, and booleans for a mask, as numpy takes them; bfloat16 read as float32), with or
    without requires_grad, mixed with numpy arrays. It is detached and read on the CPU (a CPU
    tensor without a copy), and the call runs as for numpy. When any array argument is a
    tensor, the result's numeric arrays are tensors on the first tensor argument's device (in
    signature order), floats in the input's float dtype (the first floating tensor's: float64,
    or float32 for float32, float16 and bfloat16 tensors; with integer tensors only, float32
    for ``precision="f32"`` and float64 otherwise); status, iterations and counts int64. Their
    values are the numpy call's, bit for bit in float64 and rounded to float32 in float32 (the
    computation runs at ``precision`` either way: f64 unless asked). The rest is unchanged: kernel, starts,
    rounds, the str arrays reason and outcome, and ``params`` (a Params holds numpy arrays).
    No gradient flows back: batchgp is not a torch operation, and its outputs do not require
    grad (``batchgp.torch`` fits GPyTorch models by their own parameters). A tensor whose values
    cannot be read (the meta device) raises BatchGPError naming the argument.

    Raises
    ------
    BatchGPError
        For a rejected request. KeyboardInterrupt (Ctrl-C) stops the fit.
    """
    if standardize:
        raise BatchGPError(
            "invalid option `standardize`: standardize was removed: it did nothing, as every fit "
            "already runs on y standardised per member and reports in the data's units"
        )
    own = {"restarts": restarts, "bounds": bounds}
    own.update(num_inducing=num_inducing, z=z, batch_size=batch_size)
    chosen = _models.for_fit(model, init, own)
    to = _tensors.target((x, y, mask, yvar, z), precision)
    x, y, mask, yvar = as_data(x, y, mask, yvar)
    if chosen is _models.EXACT:
        r = _native.DEFAULT_RESTARTS if restarts is None else restarts
        options = {"restarts": as_int("restarts", r)}
        options["bounds"] = as_bounds(bounds)
    else:
        options = {
            "z": as_optional_array(z, "z"),
            "num_inducing": None if num_inducing is None else as_int("num_inducing", num_inducing, 1),
            "batch_size": None if batch_size is None else as_int("batch_size", batch_size, 1),
        }
    fitted = _progress.run_fit(
        progress,
        lambda rep: _native.fit(
            x,
            y,
            mask,
            yvar,
            as_str("kernel", kernel),
            _as_priors(priors),
            None if init is None else _models.of_params(init, "init", (chosen,))[1],
            as_fix(fix),
            as_optional_str("optimizer", optimizer),
            None if max_iter is None else as_int("max_iter", max_iter),
            None if lr is None else as_positive("lr", lr),
            as_seed(seed),
            as_int("first_member", first_member),
            as_str("backend", backend),
            as_str("precision", precision),
            rep,
            chosen.name,
            options,
        ),
        chosen.fitted,
    )
    return _tensors.result(fitted, to)


def _evaluation(models: tuple, name: str, doc: str) -> Callable[..., Any]:
    """The evaluate of the parameters of ``models``: :func:`evaluate` (every model), :func:`mll`
    (exact GPs) and :func:`batchgp.svgp.elbo` (SVGPs) are this one function and signature."""

    def evaluate(
        x: ArrayLike,
        y: ArrayLike,
        params: Any,
        *,
        mask: ArrayLike | None = None,
        yvar: ArrayLike | None = None,
        kernel: str | None = None,
        priors: PriorsArg = None,
        backend: str = "auto",
        precision: str = "f64",
    ) -> Any:
        model, params = _models.of_params(params, "params", models)
        to = _tensors.target((x, y, mask, yvar), precision)
        x, y, mask, yvar = as_data(x, y, mask, yvar)
        arrays = _native.evaluate(
            x,
            y,
            params,
            mask,
            yvar,
            as_optional_str("kernel", kernel),
            _as_priors(priors),
            as_str("backend", backend),
            as_str("precision", precision),
        )
        return _tensors.result(model.evaluation(arrays), to)

    evaluate.__name__ = evaluate.__qualname__ = name
    evaluate.__doc__ = doc
    evaluate.__annotations__["params"] = " | ".join(m.params.__name__ for m in models)
    evaluate.__annotations__["return"] = " | ".join(m.evaluation.__name__ for m in models)
    return evaluate


evaluate = _evaluation(
    _models.MODELS,
    "evaluate",
    """The objective of every member at ``params`` and its gradient: for a :class:`Params` the
    exact marginal log-likelihood (an :class:`MllResult`, as :func:`mll`), for an
    :class:`SvgpParams` the ELBO on the full data (an :class:`ElboResult`, as
    :func:`batchgp.svgp.elbo`); each with the log prior and objective = mll (elbo) + log prior.

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
    y : array (B, N)
    params : Params or SvgpParams
        B members (a fit's result stands for its ``params``).
    mask, yvar : array (B, N), optional
        As in :func:`fit`.
    kernel : str, optional
        Must agree with ``params.kernel`` when given.
    priors : dict, optional
        As in :func:`fit`.
    backend, precision : str
        As in :func:`fit`.

    Returns
    -------
    MllResult
        mll, log_prior, objective, status, jitter (B,); grad_log_lengthscale (B, D),
        grad_log_outputscale, grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)]: the
        gradient of the objective. Torch tensors when an array argument is one (as in
        :func:`fit`).
    ElboResult
        elbo, log_prior, objective, status, jitter (B,); grad_z (B, M, D), grad_q_mu (B, M),
        grad_q_sqrt (B, M, M) and the hyperparameters' gradient as above.
    """,
)

mll = _evaluation(
    (_models.EXACT,),
    "mll",
    """The exact marginal log-likelihood, log prior, objective and gradient at ``params`` (a
    :class:`Params`; a FitResult stands for its params): :func:`evaluate` for exact GPs only,
    giving an :class:`MllResult` (mll, log_prior, objective, status, jitter and the objective's
    gradient with respect to the log hyperparameters and the mean; torch tensors when an array
    argument is one, as in :func:`fit`).""",
)


def predict(
    x: ArrayLike | None = None,
    y: ArrayLike | None = None,
    params: Params | SvgpParams | None = None,
    x_test: ArrayLike | None = None,
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
    """The posterior of every member at test points: ``predict(x, y, params, x_test)`` for exact
    GPs (the posterior given the training data), ``predict(params, x_test)`` for an
    :class:`SvgpParams` (an SVGP's posterior is in its parameters: it takes no training data).

    Parameters
    ----------
    x : array (B, N, D) or (N, D)
        Training inputs (exact GPs).
    y : array (B, N)
        Training targets (exact GPs).
    params : Params or SvgpParams
        B members (a fit's result stands for its ``params``).
    x_test : array (M, D) or (B, M, D)
        Test points, shared or per member.
    mask, yvar : array (B, N), optional
        As in :func:`fit` (exact GPs).
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
        [samples (S, B, M)], [covariance (B, M, M)]. Torch tensors when x, y, x_test, mask or
        yvar is one, on the first one's device (as in :func:`fit`).
    """
    if params is None and x_test is None and isinstance(x, (SvgpParams, SvgpResult)):
        x, y, params, x_test = None, None, x, y  # predict(params, x_test)
    data = {"x": x, "y": y, "mask": mask, "yvar": yvar}
    options = {"kernel": kernel, "samples": samples, "seed": seed, "full_covariance": full_covariance}
    options.update(backend=backend, precision=precision, first_member=first_member)
    return _predict(_models.MODELS, params, x_test, data, **options)


def _predict(models: tuple, params: Any, x_test: Any, data: dict, **o: Any) -> Prediction:
    """:func:`predict` for parameters of one of ``models``; ``data``: x, y, mask and yvar."""
    model, params = _models.of_params(params, "params", models)
    if x_test is None:
        raise BatchGPError("missing array `x_test` (the test points)")
    to = _tensors.target((data["x"], data["y"], x_test, data["mask"], data["yvar"]), o["precision"])
    if model.needs_data:
        if data["x"] is None or data["y"] is None:
            raise BatchGPError("missing array `x` or `y` (an exact GP's prediction conditions on its training data)")
        data = dict(zip(("x", "y", "mask", "yvar"), as_data(data["x"], data["y"], data["mask"], data["yvar"])))
    else:
        for name, given in data.items():
            if given is not None:
                raise option_error(
                    name, f"the {model.name} model's prediction takes no training data: predict(params, x_test)"
                )
    prediction = Prediction(
        _native.predict(
            data["x"],
            data["y"],
            params,
            as_array(x_test, "x_test"),
            data["mask"],
            data["yvar"],
            as_optional_str("kernel", o["kernel"]),
            as_int("samples", o["samples"]),
            as_seed(o["seed"]),
            bool(o["full_covariance"]),
            as_str("backend", o["backend"]),
            as_str("precision", o["precision"]),
            as_int("first_member", o["first_member"]),
        )
    )
    return _tensors.result(prediction, to)


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
        A torch tensor on x's device when x is one (as in :func:`fit`).
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
    to = _tensors.target((x,), precision)
    return out["samples"] if to is None else _tensors.tensor(out["samples"], to)


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
