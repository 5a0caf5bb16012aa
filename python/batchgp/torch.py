"""batchgp.torch: GPyTorch and BoTorch models fitted by batchgp (the optional extra ``[torch]``).

    >>> from batchgp.torch import fit_gpytorch_mll      # instead of: from botorch import ...
    >>> fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))

:func:`fit_gpytorch_mll` reads the model (an ``ExactGP`` with any batch shape, BoTorch's
``SingleTaskGP`` single- or multi-output, a ``ModelListGP`` under a ``SumMarginalLogLikelihood``
whose outputs may have different numbers of points), fits every member with batchgp as one batch
(members with the same structure together; ragged members padded and masked), and writes the
fitted hyperparameters back into the model's own parameters through each constraint's inverse
transform. The problem is the one GPyTorch defines: the exact mll of the training data as the
model sees it (its input transform applied, its outcome transform's targets), plus the log
density of every registered prior, within every constraint (a constraint's bounds are batchgp
bounds; an open bound, one with a transform, is kept a relative 1e-9 inside). Parameters with
``requires_grad=False`` are held fixed.

What batchgp does not model exactly is refused before any work with a BatchGPError naming the
module: another kernel, an additive or product kernel, ``active_dims``, a non-Gaussian
likelihood, a prior batchgp does not have, an unknown trainable parameter. A single lengthscale
shared by D > 1 dimensions (no ``ard_num_dims``) runs scipy's L-BFGS-B over batchgp's batched
objective and gradient (batchgp's core fits one lengthscale per dimension).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gpytorch.kernels import MaternKernel, RBFKernel, RQKernel, ScaleKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
from gpytorch.means import ConstantMean, ZeroMean
from gpytorch.mlls import ExactMarginalLogLikelihood, SumMarginalLogLikelihood
from gpytorch.models import ExactGP
from gpytorch.priors import GammaPrior, HalfCauchyPrior, LogNormalPrior, NormalPrior, UniformPrior

from . import priors as _priors
from ._batchgp import BatchGPError
from ._isotropic import fit_isotropic
from .api import fit as _fit
from .params import Params

__all__ = ["fit_gpytorch_mll"]

SUPPORTED = (
    "ExactGP / SingleTaskGP / ModelListGP models with ScaleKernel(RBFKernel | MaternKernel(nu 0.5, 1.5, 2.5) | "
    "RQKernel) or the bare kernel, ConstantMean or ZeroMean, GaussianLikelihood or FixedNoiseGaussianLikelihood, "
    "priors Gamma, LogNormal, Normal, HalfCauchy, Uniform, constraints GreaterThan, LessThan, Interval, Positive"
)
_MATERN = {0.5: "matern12", 1.5: "matern32", 2.5: "matern52"}
_PRIORS = {
    GammaPrior: (_priors.Gamma, ("concentration", "rate")),
    LogNormalPrior: (_priors.LogNormal, ("loc", "scale")),
    NormalPrior: (_priors.Normal, ("loc", "scale")),
    HalfCauchyPrior: (_priors.HalfCauchy, ("scale",)),
    UniformPrior: (_priors.Uniform, ("low", "high")),
}
_BOTORCH_ONLY = ("closure", "closure_kwargs", "optimizer_kwargs")
# An open bound (a constraint with a transform) is never reached: its inverse transform would
# be infinite there. The fit keeps this relative margin inside it.
_OPEN_MARGIN = 1e-9
# FixedNoiseGaussianLikelihood has no learned noise: batchgp's is held at this negligible value.
_NO_NOISE = 1e-300


def _refuse(where: str, what: str) -> BatchGPError:
    return BatchGPError(f"batchgp.torch cannot fit {where}: {what}; batchgp fits {SUPPORTED}")


@dataclass
class _Hyper:
    """One kind of hyperparameter of one model: where it lives and how it is fitted."""

    module: Any  # the module that owns it
    attr: str  # its natural-value attribute (lengthscale, outputscale, noise, constant, alpha)
    raw: str  # its raw parameter's name
    prior: Any = None  # (batchgp prior class, parameter arrays broadcast to the value's shape)
    fixed: bool = False

    def value(self) -> torch.Tensor:
        return getattr(self.module, self.attr).detach()

    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        c = getattr(self.module, self.raw + "_constraint", None)
        if c is None:
            return None
        shape = self.value().shape
        lo = torch.broadcast_to(c.lower_bound.detach(), shape).double().cpu().numpy().copy()
        hi = torch.broadcast_to(c.upper_bound.detach(), shape).double().cpu().numpy().copy()
        if c.enforced:  # a transform: the bounds are open
            with np.errstate(invalid="ignore"):
                width = np.where(np.isfinite(hi - lo), hi - lo, np.where(np.isfinite(lo), np.abs(lo), np.abs(hi)))
                lo = np.where(np.isfinite(lo), lo + _OPEN_MARGIN * width, lo)
                hi = np.where(np.isfinite(hi), hi - _OPEN_MARGIN * width, hi)
        if self.attr != "constant":
            lo = np.maximum(lo, 0.0)
        return lo, hi


@dataclass
class _Model:
    """One ExactGP as batchgp sees it: B members (its batch shape flattened)."""

    model: Any
    batch_shape: tuple
    x: np.ndarray  # (B, N, D)
    y: np.ndarray  # (B, N)
    yvar: np.ndarray | None  # (B, N)
    kernel: str
    hypers: dict = field(default_factory=dict)  # target -> _Hyper (absent: held at a constant)
    constants: dict = field(default_factory=dict)  # target -> the constant (outputscale 1, mean 0, ...)
    isotropic: bool = False  # one lengthscale for D > 1 dimensions, to be fitted

    @property
    def b(self) -> int:
        return self.y.shape[0]

    def signature(self) -> tuple:
        """Models with equal signatures are fitted as one batch."""
        hy = tuple(
            (t, h.fixed, None if h.prior is None else h.prior[0], h.bounds() is not None)
            for t, h in sorted(self.hypers.items())
        )
        return (self.kernel, self.x.shape[2], self.yvar is not None, hy, tuple(sorted(self.constants)), self.isotropic)

    def per_member(self, t: str, a: Any) -> np.ndarray:
        """Values shaped like hyperparameter t, as (B, D) for the lengthscale or (B,)."""
        a = np.asarray(a, dtype=np.float64)
        if t == "lengthscale":
            d = self.x.shape[2]
            return np.broadcast_to(a.reshape(self.b, -1), (self.b, d))
        return a.reshape(self.b)

    def values(self, t: str) -> np.ndarray:
        if t in self.hypers:
            return self.per_member(t, self.hypers[t].value().double().cpu().numpy())
        shape = (self.b, self.x.shape[2]) if t == "lengthscale" else (self.b,)
        return np.full(shape, self.constants[t])


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _exact_type(module: Any, types: tuple) -> bool:
    return type(module) in types


def _read_model(model: Any, likelihood: Any, where: str) -> _Model:
    if not isinstance(model, ExactGP):
        raise _refuse(where, f"{type(model).__name__} is not an ExactGP")
    if not isinstance(likelihood, (GaussianLikelihood, FixedNoiseGaussianLikelihood)) or not _exact_type(
        likelihood, (GaussianLikelihood, FixedNoiseGaussianLikelihood)
    ):
        raise _refuse(f"{where}.likelihood", f"{type(likelihood).__name__} is not a Gaussian likelihood batchgp has")
    model.train()  # BoTorch: the original training inputs, transformed as in training
    with torch.no_grad():
        (x,) = model.train_inputs
        if getattr(model, "input_transform", None) is not None:
            x = model.transform_inputs(x)
        y = model.train_targets
    batch_shape = tuple(y.shape[:-1])
    b, n = int(np.prod(batch_shape, dtype=np.int64)), y.shape[-1]
    x = torch.broadcast_to(x, (*batch_shape, n, x.shape[-1]))
    spec = _Model(model, batch_shape, _to_numpy(x).reshape(b, n, -1), _to_numpy(y).reshape(b, n), None, "")

    covar = model.covar_module
    scale = None
    if _exact_type(covar, (ScaleKernel,)):
        scale, covar = covar, covar.base_kernel
        spec.hypers["outputscale"] = _Hyper(scale, "outputscale", "raw_outputscale")
    else:
        spec.constants["outputscale"] = 1.0
    kname = f"{where}.covar_module"
    if _exact_type(covar, (RBFKernel,)):
        spec.kernel = "rbf"
    elif _exact_type(covar, (MaternKernel,)) and float(covar.nu) in _MATERN:
        spec.kernel = _MATERN[float(covar.nu)]
    elif _exact_type(covar, (RQKernel,)):
        spec.kernel = "rq"
        spec.hypers["alpha"] = _Hyper(covar, "alpha", "raw_alpha")
    else:
        raise _refuse(kname, f"{type(covar).__name__} (nu={getattr(covar, 'nu', None)}) is not a kernel batchgp has")
    for k in (scale, covar):
        if k is not None and k.active_dims is not None:
            raise _refuse(kname, "active_dims is set (batchgp's kernels use every input dimension)")
    spec.hypers["lengthscale"] = _Hyper(covar, "lengthscale", "raw_lengthscale")

    mean = model.mean_module
    if _exact_type(mean, (ConstantMean,)):
        spec.hypers["mean"] = _Hyper(mean, "constant", "raw_constant")
    elif _exact_type(mean, (ZeroMean,)):
        spec.constants["mean"] = 0.0
    else:
        raise _refuse(f"{where}.mean_module", f"{type(mean).__name__} is not ConstantMean or ZeroMean")

    noise_module = likelihood.noise_covar
    if isinstance(likelihood, FixedNoiseGaussianLikelihood):
        spec.yvar = _to_numpy(torch.broadcast_to(likelihood.noise_covar.noise, y.shape)).reshape(b, n)
        noise_module = likelihood.second_noise_covar
    if noise_module is None:
        spec.constants["noise"] = _NO_NOISE
    else:
        spec.hypers["noise"] = _Hyper(noise_module, "noise", "raw_noise")

    _read_flags_and_priors(spec, model, where)
    ls = spec.hypers["lengthscale"]
    spec.isotropic = ls.value().shape[-1] == 1 and spec.x.shape[2] > 1 and not ls.fixed
    return spec


def _read_flags_and_priors(spec: _Model, model: Any, where: str) -> None:
    """Fixed flags from requires_grad; priors matched to their hyperparameter; anything else
    trainable, or a prior on anything else, refused."""
    owner = {(id(h.module), h.raw): t for t, h in spec.hypers.items()}
    for name, p in model.named_parameters():
        mod_name, _, raw = name.rpartition(".")
        module = model.get_submodule(mod_name) if mod_name else model
        t = owner.get((id(module), raw))
        if t is None:
            if p.requires_grad:
                raise _refuse(f"{where}.{name}", "a trainable parameter batchgp does not model")
            continue
        spec.hypers[t].fixed = not p.requires_grad
    for name, module, prior, closure, _ in model.named_priors():
        t = next((t for t, h in spec.hypers.items() if h.module is module and name.endswith(_prior_name(h))), None)
        if t is None:
            raise _refuse(f"{where}.{name}", "a prior on something batchgp does not model")
        if type(prior) not in _PRIORS:
            raise _refuse(f"{where}.{name}", f"{type(prior).__name__} is not a prior batchgp has")
        cls, names = _PRIORS[type(prior)]
        shape = spec.hypers[t].value().shape
        arrays = [spec.per_member(t, _to_numpy(torch.broadcast_to(getattr(prior, a), shape))) for a in names]
        spec.hypers[t].prior = (cls, arrays)


def _prior_name(h: _Hyper) -> str:
    return "mean_prior" if h.attr == "constant" else h.attr + "_prior"


_TARGETS = ("lengthscale", "outputscale", "noise", "mean", "alpha")
_ATTR = {"lengthscale": "lengthscale", "outputscale": "outputscale", "noise": "noise", "mean": "constant", "alpha": "alpha"}


def _fit_group(specs: list[_Model], options: dict) -> tuple:
    """Fits models of one signature as one batch (padded and masked when N differs)."""
    first = specs[0]
    b = sum(s.b for s in specs)
    n = max(s.y.shape[1] for s in specs)
    d = first.x.shape[2]
    x, y, mask = np.zeros((b, n, d)), np.zeros((b, n)), np.zeros((b, n))
    yvar = np.zeros((b, n)) if first.yvar is not None else None
    rows, at = [], 0
    for s in specs:
        k = s.y.shape[1]
        x[at : at + s.b, :k], y[at : at + s.b, :k], mask[at : at + s.b, :k] = s.x, s.y, 1.0
        if yvar is not None:
            yvar[at : at + s.b, :k] = s.yvar
        rows.append(slice(at, at + s.b))
        at += s.b
    cat = lambda f: np.concatenate([f(s) for s in specs])
    vals = {t: cat(lambda s, t=t: s.values(t)) for t in _TARGETS if t in first.hypers or t in first.constants}
    init = Params(vals["lengthscale"], vals["outputscale"], vals["noise"], vals["mean"], vals.get("alpha"), first.kernel)
    fix = [t for t in vals if t not in first.hypers or first.hypers[t].fixed]
    priors, bounds = {}, {}
    for t, h in first.hypers.items():
        if h.prior is not None:
            cls = h.prior[0]
            priors[t] = cls(*[cat(lambda s, i=i, t=t: s.hypers[t].prior[1][i]) for i in range(len(h.prior[1]))])
        if h.bounds() is not None and not h.fixed:
            lo = cat(lambda s, t=t: s.per_member(t, s.hypers[t].bounds()[0]))
            hi = cat(lambda s, t=t: s.per_member(t, s.hypers[t].bounds()[1]))
            bounds[t] = (lo, hi)
    mask_arg = None if all(s.y.shape[1] == n for s in specs) else mask
    r = (fit_isotropic if first.isotropic else _fit)(x, y, mask=mask_arg, yvar=yvar, kernel=first.kernel, priors=priors, init=init, fix=fix,
             bounds=bounds or None, **options)
    return r, rows


def _write_back(spec: _Model, r: Any, rows: slice) -> None:
    """The fitted values into the model's parameters, through each constraint's inverse."""
    fitted = {"lengthscale": r.lengthscale, "outputscale": r.outputscale, "noise": r.noise, "mean": r.mean,
              "alpha": r.alpha}
    with torch.no_grad():
        for t, h in spec.hypers.items():
            if h.fixed:
                continue
            old = h.value()
            v = np.asarray(fitted[t][rows])
            if t == "lengthscale":
                v = v[:, : old.shape[-1]]
            new = torch.tensor(np.array(v), dtype=old.dtype, device=old.device).reshape(old.shape)
            h.module.initialize(**{h.attr: new})


def fit_gpytorch_mll(mll: Any, **options: Any) -> Any:
    """Fits a GPyTorch / BoTorch model's hyperparameters with batchgp, BoTorch's call shape.

    Parameters
    ----------
    mll : ExactMarginalLogLikelihood or SumMarginalLogLikelihood
        Over an ExactGP (any batch shape; BoTorch's SingleTaskGP, multi-output included) or a
        ModelListGP of them, as BoTorch's ``fit_gpytorch_mll`` takes it.
    **options
        Options of :func:`batchgp.fit`: ``max_iter``, ``restarts``, ``seed``, ``optimizer``
        ("lbfgs" or "adam"), ``backend``, ``precision``, ``progress``. BoTorch's ``closure``,
        ``closure_kwargs`` and ``optimizer_kwargs`` are refused.

    Returns
    -------
    The same ``mll``, its model in eval mode, the fitted values in its parameters, with
    ``mll.batchgp_status`` and ``mll.batchgp_reason``: per model (a list for a ModelListGP, one
    entry otherwise), arrays of the model's batch shape (status codes as in FitResult.status;
    reasons in words); ``mll.batchgp_results``: the FitResult of each batch fitted.

    Raises
    ------
    BatchGPError
        For a structure batchgp does not fit exactly (before any work), or a rejected option.
    """
    for k in _BOTORCH_ONLY:
        if options.pop(k, None) is not None:
            raise BatchGPError(f"invalid option `{k}`: BoTorch's {k} has no meaning for batchgp's fit")
    if callable(options.get("optimizer")):
        raise BatchGPError("invalid option `optimizer`: a BoTorch optimizer callable; batchgp takes 'lbfgs' or 'adam'")
    if isinstance(mll, SumMarginalLogLikelihood):
        pairs = [(sub.model, sub.likelihood, f"model.models[{i}]") for i, sub in enumerate(mll.mlls)]
        for _, sub in enumerate(mll.mlls):
            if type(sub) is not ExactMarginalLogLikelihood:
                raise _refuse("mll.mlls", f"{type(sub).__name__} is not ExactMarginalLogLikelihood")
    elif type(mll) is ExactMarginalLogLikelihood:
        pairs = [(mll.model, mll.likelihood, "model")]
    else:
        raise _refuse("mll", f"{type(mll).__name__} is not ExactMarginalLogLikelihood or SumMarginalLogLikelihood")
    specs = [_read_model(m, lik, where) for m, lik, where in pairs]
    groups: dict = {}
    for i, s in enumerate(specs):
        groups.setdefault(s.signature(), []).append(i)
    status, reason, results = [None] * len(specs), [None] * len(specs), []
    for members in groups.values():
        r, rows = _fit_group([specs[i] for i in members], dict(options))
        results.append(r)
        for i, sl in zip(members, rows):
            _write_back(specs[i], r, sl)
            status[i] = np.asarray(r.status[sl]).reshape(specs[i].batch_shape)
            reason[i] = np.asarray(r.reason[sl], dtype=object).reshape(specs[i].batch_shape)
    mll.eval()
    mll.batchgp_status, mll.batchgp_reason, mll.batchgp_results = status, reason, results
    return mll
