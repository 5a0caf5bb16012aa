"""Sparse variational GPs (docs/design.md section 11) under their own names: fit, elbo and
predict for a batch of B SVGPs, each with its own M inducing inputs, whitened variational
distribution and hyperparameters. They are :func:`batchgp.fit` (with SVGP options),
:func:`batchgp.evaluate` and :func:`batchgp.predict` for an :class:`SvgpParams`, which take the
SVGP as they take exact GPs.

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

from . import _models, api
from ._checks import as_int, as_positive
from .api import ArrayLike, PriorsArg
from .params import SvgpParams
from .results import ElboResult, Prediction, SvgpResult

__all__ = ["ElboResult", "SvgpParams", "SvgpResult", "elbo", "fit", "predict"]


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
    """Fit every member's SVGP by maximising the ELBO (or ELBO + log prior):
    :func:`batchgp.fit` with ``model="svgp"``, ``steps`` its ``max_iter``; the options are
    described there.

    Returns
    -------
    SvgpResult
        z, q_mu, q_sqrt, the hyperparameters, elbo, log_prior, objective, status, reason,
        jitter, iterations, loss (T, B), and ``params`` (an SvgpParams) for predict/elbo.
    """
    if init is not None:
        init = _models.of_params(init, "init", (_models.SVGP,))[1]
    return api.fit(
        x,
        y,
        model="svgp",
        num_inducing=num_inducing,
        z=z,
        init=init,
        mask=mask,
        yvar=yvar,
        kernel=kernel,
        priors=priors,
        batch_size=batch_size,
        max_iter=as_int("steps", steps),
        lr=as_positive("lr", lr),
        optimizer=optimizer,
        fix=fix,
        seed=seed,
        backend=backend,
        precision=precision,
        progress=progress,
    )


elbo = api._evaluation(
    (_models.SVGP,),
    "elbo",
    """The ELBO on the full data, log prior, objective and the objective's gradient at
    ``params`` (an SvgpParams; an SvgpResult stands for its params): :func:`batchgp.evaluate`
    for SVGPs only.

    Returns
    -------
    ElboResult
        elbo, log_prior, objective, status, jitter (B,); grad_z (B, M, D), grad_q_mu (B, M),
        grad_q_sqrt (B, M, M), grad_log_lengthscale (B, D), grad_log_outputscale,
        grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)] (as the CLI's O.npz).
    """,
)
elbo.__module__ = __name__


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
    """The SVGP posterior of every member at test points (no training data needed): mean
    m + A^T q_mu and var s - |A|^2 + |q_sqrt^T A|^2 per point, A = L^-1 k(Z, x_test):
    :func:`batchgp.predict` for SVGPs only.

    Returns
    -------
    Prediction
        mean, var (of f), var_y (of y), lower, upper (B, M); status, jitter (B,);
        [samples (S, B, M)], [covariance (B, M, M)].
    """
    data = {"x": None, "y": None, "mask": None, "yvar": None}
    options = {"kernel": kernel, "samples": samples, "seed": seed, "full_covariance": full_covariance}
    return api._predict(
        (_models.SVGP,), params, x_test, data, backend=backend, precision=precision, first_member=0, **options
    )
