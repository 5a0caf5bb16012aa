"""batchgp: fit and predict with many independent Gaussian processes at once.

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

One path for every model, chosen by its parameters: ``fit``, ``evaluate`` and ``predict`` take
exact GPs (``Params``) and sparse variational GPs (``SvgpParams``; ``fit`` with
``num_inducing=``, ``z=`` or ``model="svgp"``). Functions: fit, evaluate, predict, mll (evaluate
for exact GPs), sample_prior, info, set_num_threads. Types: Params, SvgpParams, FitResult,
SvgpResult, MllResult, ElboResult, Prediction, the priors Gamma, LogNormal, Normal, HalfCauchy,
Uniform, the estimator BatchGP, and BatchGPError (a ValueError) for every rejected input;
DEFAULT_RESTARTS, the exact GP's extra starts per GP when fit (or BatchGP) is given none.
Arrays may be torch tensors (any device): the results' arrays are then tensors on the first
tensor argument's device (see :func:`fit`).
Submodules, loaded on first use (``batchgp.dask`` works after ``import batchgp``): svgp (the
SVGP under its own names: fit, elbo, predict), dask (batches larger than one machine; needs the
``dask`` extra), torch and sklearn where this build has them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._batchgp import DEFAULT_RESTARTS, BatchGPError, __version__
from .api import evaluate, fit, info, mll, predict, sample_prior, set_num_threads
from .estimator import BatchGP
from .params import Params, SvgpParams
from .priors import Gamma, HalfCauchy, LogNormal, Normal, Prior, Uniform
from .results import STATUS_TEXT, ElboResult, FitResult, MllResult, Prediction, SvgpResult

# Submodules imported on first attribute access (PEP 562), with the optional dependencies they
# need and the extra (pip install 'batchgp[extra]') that brings them.
_SUBMODULES: dict = {
    "svgp": {},
    "dask": {"dask": "dask", "distributed": "dask"},
    "torch": {"torch": "torch"},
    "sklearn": {"sklearn": "sklearn"},
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'batchgp' has no attribute '{name}'")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as e:
        if getattr(e, "name", None) == f"{__name__}.{name}":
            raise AttributeError(f"module 'batchgp' has no attribute '{name}' (not in this build)") from None
        missing = _missing_module(e)
        extra = _SUBMODULES[name].get((missing or "").split(".")[0])
        if extra is None:
            raise
        raise ImportError(
            f"batchgp.{name} needs {missing}, which is not installed: pip install 'batchgp[{extra}]'",
            name=missing,
        ) from e
    globals()[name] = module
    return module


def _missing_module(e: BaseException | None) -> str | None:
    """The module whose absence caused ``e`` (or the error it was raised from), if any."""
    while e is not None:
        if isinstance(e, ModuleNotFoundError) and e.name:
            return e.name
        e = e.__cause__ or e.__context__
    return None


def __dir__() -> list:
    return sorted(set(globals()) | set(_SUBMODULES))


__all__ = [
    "DEFAULT_RESTARTS",
    "STATUS_TEXT",
    "BatchGP",
    "BatchGPError",
    "ElboResult",
    "FitResult",
    "Gamma",
    "HalfCauchy",
    "LogNormal",
    "MllResult",
    "Normal",
    "Params",
    "Prediction",
    "Prior",
    "SvgpParams",
    "SvgpResult",
    "Uniform",
    "__version__",
    "evaluate",
    "fit",
    "info",
    "mll",
    "predict",
    "sample_prior",
    "set_num_threads",
    "svgp",
]
