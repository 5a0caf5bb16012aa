"""Type stubs of the Rust extension batchgp._batchgp (python/src/lib.rs).

Arrays are numpy f64 or f32 arrays (the Python layer converts everything else); results are
dicts of f64 arrays (status and iteration counts: int64) that batchgp/ wraps in result classes.
Every function raises BatchGPError for a rejected request.
"""

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeAlias

__version__: str
STATUS_TEXT: list[str]
DEFAULT_RESTARTS: int  # the exact GP's restarts when batchgp.fit is given none

class BatchGPError(ValueError): ...

class _ParamsLike(Protocol):
    kernel: str
    lengthscale: NDArray[np.floating]  # (B, D)
    outputscale: NDArray[np.floating]  # (B,)
    noise: NDArray[np.floating]  # (B,)
    mean: NDArray[np.floating]  # (B,)
    alpha: NDArray[np.floating] | None  # (B,) for rq

class _SvgpParamsLike(Protocol):
    z: NDArray[np.floating]  # (B, M, D)
    q_mu: NDArray[np.floating]  # (B, M)
    q_sqrt: NDArray[np.floating]  # (B, M, M), lower triangle read
    hyperparameters: _ParamsLike

class _Progress(Protocol):
    def start(self, total: int) -> None: ...
    def update(self, iteration: int, running: int, converged: int, total: int) -> None: ...

_Array: TypeAlias = NDArray[np.floating]
# (hyperparameter, family, parameters as 0-d, 1-d or 2-d arrays)
_PriorSpec: TypeAlias = tuple[str, str, Sequence[_Array]]

# Either model's parameters: an exact GP's (a Params) or an SVGP's (an SvgpParams).
_ModelParams: TypeAlias = _ParamsLike | _SvgpParamsLike

# Bounds as batchgp.fit passes them (its `bounds`: a (low, high) tuple or {name: (low, high)}):
# one box (low, high) on every positive hyperparameter, or (name, low, high) per kind
# (lengthscale, outputscale, noise, mean, alpha), low and high broadcast as prior parameters.
_Bounds: TypeAlias = tuple[float, float] | Sequence[tuple[str, _Array, _Array]]

class _ExactOptions(TypedDict):
    restarts: int
    bounds: _Bounds | None

class _SvgpOptions(TypedDict):
    z: _Array | None  # (M, D) or (B, M, D)
    num_inducing: int | None
    batch_size: int | None

def evaluate(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    params: _ModelParams,
    mask: _Array | None,  # (B, N)
    yvar: _Array | None,  # (B, N)
    kernel: str | None,
    priors: Sequence[_PriorSpec],
    backend: str,
    precision: str,
) -> dict[str, NDArray[Any]]:
    """Exact GPs: mll, log_prior, objective, status, jitter (B,); grad_log_lengthscale (B, D),
    grad_log_outputscale, grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)]. SVGPs: elbo in
    place of mll, and grad_z (B, M, D), grad_q_mu (B, M), grad_q_sqrt (B, M, M) too (backend
    "auto" is the CPU)."""

def predict(
    x: _Array | None,  # (B, N, D) or (N, D); exact GPs only
    y: _Array | None,  # (B, N); exact GPs only
    params: _ModelParams,
    x_test: _Array,  # (M, D) or (B, M, D)
    mask: _Array | None,
    yvar: _Array | None,
    kernel: str | None,
    samples: int,
    seed: int,
    full_covariance: bool,
    backend: str,
    precision: str,
    first_member: int = 0,
) -> dict[str, NDArray[Any]]:
    """mean, var, var_y, lower, upper (B, M); status, jitter (B,); [covariance (B, M, M)],
    [samples (S, B, M)]."""

def sample_prior(
    x: _Array,  # (N, D) or (B, N, D)
    params: _ParamsLike,
    kernel: str | None,
    samples: int,
    seed: int,
    noise: bool,
    backend: str,
    precision: str,
) -> dict[str, NDArray[Any]]:
    """samples (S, B, N), status (B,)."""

def fit(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    mask: _Array | None,
    yvar: _Array | None,
    kernel: str,
    priors: Sequence[_PriorSpec],
    init: _ModelParams | None,  # of the model `model`
    fix: Sequence[str],  # hyperparameter names, and "z" for the SVGP
    optimizer: str | None,  # None: the model's default
    max_iter: int | None,
    lr: float | None,
    seed: int,
    first_member: int,
    backend: str,
    precision: str,
    progress: _Progress | None,
    model: str,  # "exact" or "svgp"
    options: _ExactOptions | _SvgpOptions,  # of the model `model`
) -> dict[str, Any]:
    """kernel (str); lengthscale (B, D), outputscale, noise, mean, [alpha] (B,); log_prior,
    objective, status, jitter, iterations (B,); reason, outcome (lists of B str). Exact GPs: mll,
    restart (B,), rounds (int). SVGPs: elbo (B,), z (B, M, D), q_mu (B, M), q_sqrt (B, M, M),
    loss (T, B). Ctrl-C stops it with KeyboardInterrupt."""

def parse_kernel(name: str) -> str: ...
def set_num_threads(n: int) -> None: ...
def info() -> dict[str, Any]: ...
