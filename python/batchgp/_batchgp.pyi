"""Type stubs of the Rust extension batchgp._batchgp (python/src/lib.rs).

Arrays are numpy f64 or f32 arrays (the Python layer converts everything else); results are
dicts of f64 arrays (status and iteration counts: int64) that batchgp/ wraps in result classes.
Every function raises BatchGPError for a rejected request.
"""

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeAlias

__version__: str
STATUS_TEXT: list[str]

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

def mll(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    params: _ParamsLike,
    mask: _Array | None,  # (B, N)
    yvar: _Array | None,  # (B, N)
    kernel: str | None,
    priors: Sequence[_PriorSpec],
    backend: str,
    precision: str,
) -> dict[str, NDArray[Any]]:
    """mll, log_prior, objective, status, jitter (B,); grad_log_lengthscale (B, D),
    grad_log_outputscale, grad_log_noise, grad_mean (B,), [grad_log_alpha (B,)]."""

def predict(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    params: _ParamsLike,
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
    init: _ParamsLike | None,
    fix: Sequence[str],
    optimizer: str,
    max_iter: int | None,
    restarts: int,
    standardize: bool,
    bounds: tuple[float, float] | None,
    seed: int,
    backend: str,
    precision: str,
    progress: _Progress | None,
    first_member: int = 0,
) -> dict[str, Any]:
    """kernel (str); lengthscale (B, D), outputscale, noise, mean, [alpha] (B,); mll,
    log_prior, objective, status, jitter, iterations, restart (B,); reason, outcome (lists of B
    str); rounds (int). Ctrl-C stops it with KeyboardInterrupt."""

def svgp_elbo(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    params: _SvgpParamsLike,
    mask: _Array | None,
    yvar: _Array | None,
    kernel: str | None,
    priors: Sequence[_PriorSpec],
    backend: str,
    precision: str,
) -> dict[str, NDArray[Any]]:
    """elbo, log_prior, objective, status, jitter (B,); grad_z (B, M, D), grad_q_mu (B, M),
    grad_q_sqrt (B, M, M), grad_log_lengthscale (B, D), grad_log_outputscale, grad_log_noise,
    grad_mean (B,), [grad_log_alpha (B,)]. backend "auto" is the CPU."""

def svgp_predict(
    params: _SvgpParamsLike,
    x_test: _Array,  # (M, D) or (B, M, D)
    kernel: str | None,
    samples: int,
    seed: int,
    full_covariance: bool,
    backend: str,
    precision: str,
) -> dict[str, NDArray[Any]]:
    """As predict: mean, var, var_y, lower, upper (B, M); status, jitter (B,); [covariance],
    [samples]."""

def svgp_fit(
    x: _Array,  # (B, N, D) or (N, D)
    y: _Array,  # (B, N)
    mask: _Array | None,
    yvar: _Array | None,
    kernel: str,
    priors: Sequence[_PriorSpec],
    init: _SvgpParamsLike | None,
    z: _Array | None,  # (M, D) or (B, M, D)
    num_inducing: int | None,
    fix: Sequence[str],  # hyperparameter names and "z"
    optimizer: str,
    steps: int,
    lr: float,
    batch_size: int | None,
    seed: int,
    backend: str,
    precision: str,
    progress: _Progress | None,
) -> dict[str, Any]:
    """kernel (str); z (B, M, D), q_mu (B, M), q_sqrt (B, M, M); lengthscale (B, D),
    outputscale, noise, mean, [alpha] (B,); elbo, log_prior, objective, status, jitter,
    iterations (B,); loss (T, B); reason, outcome (lists of B str). Ctrl-C stops it with
    KeyboardInterrupt."""

def parse_kernel(name: str) -> str: ...
def set_num_threads(n: int) -> None: ...
def info() -> dict[str, Any]: ...
