"""batchgp: fit and predict with many independent exact Gaussian processes at once.

B GPs, each with its own N points (x (B, N, D), or (N, D) shared; y (B, N); an optional mask
(B, N) for members with fewer points), its own hyperparameters and priors, fitted as one batch
by a Rust core (CPU through rayon; CUDA when a GPU is usable), with the GIL released.

    >>> import numpy as np, batchgp
    >>> x = np.linspace(0, 1, 30)[:, None]                       # (N, D), shared
    >>> y = np.sin(6 * x[:, 0] + np.arange(4)[:, None])          # (B, N)
    >>> r = batchgp.fit(x, y, priors={"noise": batchgp.LogNormal(-4.0, 1.0)})
    >>> p = batchgp.predict(x, y, r.params, np.linspace(0, 1, 50)[:, None])
    >>> p.mean.shape
    (4, 50)

Functions: fit, mll, predict, sample_prior, info, set_num_threads. Types: Params, FitResult,
MllResult, Prediction, the priors Gamma, LogNormal, Normal, HalfCauchy, Uniform, the estimator
BatchGP, and BatchGPError (a ValueError) for every rejected input. Sparse variational GPs:
batchgp.svgp (fit, elbo, predict; SvgpParams, SvgpResult, ElboResult).
"""

from ._batchgp import BatchGPError, __version__
from .api import fit, info, mll, predict, sample_prior, set_num_threads
from .estimator import BatchGP
from .params import Params
from .priors import Gamma, HalfCauchy, LogNormal, Normal, Prior, Uniform
from .results import STATUS_TEXT, FitResult, MllResult, Prediction

from . import svgp

__all__ = [
    "STATUS_TEXT",
    "BatchGP",
    "BatchGPError",
    "FitResult",
    "Gamma",
    "HalfCauchy",
    "LogNormal",
    "MllResult",
    "Normal",
    "Params",
    "Prediction",
    "Prior",
    "Uniform",
    "__version__",
    "fit",
    "info",
    "mll",
    "predict",
    "sample_prior",
    "set_num_threads",
    "svgp",
]
