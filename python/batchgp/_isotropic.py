"""Fits with one lengthscale shared by every input dimension (an isotropic kernel: scikit-learn's
scalar ``length_scale``, a GPyTorch kernel without ``ard_num_dims``). batchgp's core fits one
lengthscale per dimension, so these run here: scipy's L-BFGS-B (as scikit-learn and BoTorch run
it) over the free hyperparameters of every member at once, on the log scale (the mean as
itself), with batchgp.mll's batched objective and gradient; the shared lengthscale's gradient
is the sum of its dimensions'. The members are independent, so the joint problem is their sum.
Bounds (and uniform priors) are L-BFGS-B's box; restarts start from the initial point spread by
N(0, 1) on the log scale and keep the best per member.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

from .api import mll as _mll
from .params import Params

_ORDER = ("lengthscale", "outputscale", "noise", "mean", "alpha")


class IsotropicFit:
    """The fitted values, as a FitResult names them (B members)."""

    def __init__(self, params: Params, mll: np.ndarray, objective: np.ndarray, status: np.ndarray, reason: list):
        self.params, self.mll, self.objective, self.status, self.reason = params, mll, objective, status, reason
        self.log_prior = objective - mll
        self.lengthscale, self.outputscale, self.noise = params.lengthscale, params.outputscale, params.noise
        self.mean, self.alpha = params.mean, params.alpha


def _per_member(a: Any, t: str, b: int) -> np.ndarray:
    """A bound or prior parameter as (B, k): a number, D numbers (the lengthscale), B numbers or
    (B, D). A lengthscale's per-dimension bounds bind the shared one at their tightest."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim == 1 and t != "lengthscale":
        return a.reshape(b, 1)
    return np.broadcast_to(a.reshape(1, -1), (b, a.size))


def _box(t: str, b: int, bounds: dict | None, priors: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(B,) low and high of target t in the optimiser's coordinates."""
    lo, hi = np.full(b, -np.inf), np.full(b, np.inf)
    for low, high in ([bounds[t]] if bounds and t in bounds else []) + (
        [tuple(priors[t]._arrays)] if priors and t in priors and priors[t].family == "uniform" else []
    ):
        lo, hi = np.maximum(lo, _per_member(low, t, b).max(axis=1)), np.minimum(hi, _per_member(high, t, b).min(axis=1))
    if t == "mean":
        return lo, hi
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(lo, 0.0)), np.log(hi)


def fit_isotropic(x: Any, y: Any, *, init: Params, kernel: str, mask: Any = None, yvar: Any = None,
                  priors: dict | None = None, fix: Any = (), bounds: dict | None = None, max_iter: int | None = None,
                  restarts: int = 0, seed: int = 0, **options: Any) -> IsotropicFit:
    """Fits every member with its lengthscales tied (init's first dimension is the start).
    Of batchgp.fit's other options, backend and precision apply; the optimiser is L-BFGS-B."""
    options = {k: v for k, v in options.items() if k in ("backend", "precision")}
    b, d = init.batch_size, init.n_dims
    free = [t for t in _ORDER if t not in set(fix) and (t != "alpha" or kernel == "rq")]
    start = {t: getattr(init, t) if t != "lengthscale" else init.lengthscale[:, 0] for t in _ORDER}
    start = {t: (v if t == "mean" or v is None else np.log(v)) for t, v in start.items()}
    box = [_box(t, b, bounds, priors) for t in free]
    lows, highs = np.stack([lo for lo, _ in box], 1), np.stack([hi for _, hi in box], 1)

    def params_at(u: np.ndarray) -> Params:
        v = {t: start[t] for t in _ORDER}
        for i, t in enumerate(free):
            v[t] = u[:, i]
        nat = {t: (v[t] if t == "mean" or v[t] is None else np.exp(v[t])) for t in _ORDER}
        ls = np.repeat(np.asarray(nat["lengthscale"]).reshape(b, 1), d, axis=1)
        return Params(ls, nat["outputscale"], nat["noise"], nat["mean"], nat["alpha"], kernel)

    def f(flat: np.ndarray) -> tuple:
        r = _mll(x, y, params_at(flat.reshape(b, -1)), mask=mask, yvar=yvar, kernel=kernel, priors=priors, **options)
        grads = {"lengthscale": r.grad_log_lengthscale.sum(axis=1), "outputscale": r.grad_log_outputscale,
                 "noise": r.grad_log_noise, "mean": r.grad_mean, "alpha": getattr(r, "grad_log_alpha", None)}
        obj = np.where(np.isfinite(r.objective), r.objective, -np.inf)
        if not np.all(np.isfinite(obj)):
            return np.inf, np.zeros_like(flat)
        return -float(obj.sum()), -np.stack([grads[t] for t in free], 1).ravel()

    rng = np.random.default_rng(seed)
    best, best_obj, reason = None, np.full(b, -np.inf), ["converged"] * b
    u0 = np.stack([start[t] for t in free], 1) if free else np.zeros((b, 0))
    for r in range(restarts + 1):
        u = u0 + (rng.standard_normal(u0.shape) if r else 0.0)
        u = np.clip(u, lows, highs)
        if free:
            res = minimize(f, u.ravel(), jac=True, method="L-BFGS-B", bounds=list(zip(lows.ravel(), highs.ravel())),
                           options={"maxiter": 1000 if max_iter is None else max_iter, "ftol": 1e-15, "gtol": 1e-8})
            u, why = res.x.reshape(b, -1), ("converged" if res.success else "iteration limit")
        else:
            why = "converged"
        m = _mll(x, y, params_at(u), mask=mask, yvar=yvar, kernel=kernel, priors=priors, **options)
        better = np.nan_to_num(m.objective, nan=-np.inf) > best_obj
        best = u if best is None else np.where(better[:, None], u, best)
        best_obj = np.where(better, np.nan_to_num(m.objective, nan=-np.inf), best_obj)
        reason = [why if bt else rs for bt, rs in zip(better, reason)]
    p = params_at(best)
    m = _mll(x, y, p, mask=mask, yvar=yvar, kernel=kernel, priors=priors, **options)
    return IsotropicFit(p, m.mll, m.objective, m.status, reason)
