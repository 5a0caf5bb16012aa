"""batchgp.sklearn: a drop-in for scikit-learn's GaussianProcessRegressor, fitted by batchgp.

    >>> from batchgp.sklearn import GaussianProcessRegressor   # instead of sklearn.gaussian_process

The constructor, attributes and methods are scikit-learn's. The kernel is a scikit-learn kernel
expression that batchgp fits exactly: ``[ConstantKernel *] (RBF | Matern(nu=0.5, 1.5, 2.5) |
RationalQuadratic) [+ WhiteKernel]``, either order in each product and sum, each hyperparameter
with its bounds or ``"fixed"``. Two differences, both deliberate:

- y with several targets (n_samples, n_targets) gives one GP per target, each with its own
  hyperparameters (scikit-learn fits one set shared by every target), fitted as one batch:
  ``kernels_`` holds every target's fitted kernel (``kernel_`` is the first target's) and
  ``log_marginal_likelihood_value_`` is their total, as scikit-learn's is the total over targets.
- ``n_restarts_optimizer`` restarts batchgp's L-BFGS-B from points spread around the kernel's
  start (scikit-learn draws them log-uniformly within the bounds).

An isotropic ``length_scale`` (one for several features) that is to be fitted runs scipy's
L-BFGS-B over batchgp's batched objective and gradient (batchgp's core fits one lengthscale per
dimension); every other kernel runs batchgp's own batched L-BFGS-B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.gaussian_process import kernels as K
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._batchgp import BatchGPError
from ._isotropic import fit_isotropic
from .api import fit as _fit
from .api import mll as _mll
from .api import predict as _predict
from .params import Params

__all__ = ["GaussianProcessRegressor"]

_SUPPORTED = (
    "[ConstantKernel *] (RBF | Matern(nu=0.5, 1.5, 2.5) | RationalQuadratic) [+ WhiteKernel], with bounds or 'fixed'"
)
_MATERN = {0.5: "matern12", 1.5: "matern32", 2.5: "matern52"}
# Without a WhiteKernel the learned noise is absent: batchgp's is held at this negligible value
# and alpha enters as known noise (yvar), as scikit-learn adds it to the diagonal.
_NO_NOISE = 1e-300


def _refuse(kernel: Any, why: str) -> BatchGPError:
    return BatchGPError(f"batchgp.sklearn cannot fit the kernel {kernel}: {why}; it fits {_SUPPORTED}")


@dataclass
class _Hyp:
    """One kernel hyperparameter: its batchgp target, value, bounds, fixed flag, sklearn name."""

    target: str
    value: np.ndarray
    bounds: np.ndarray  # (k, 2)
    fixed: bool
    name: str  # the composite kernel's parameter name, as in kernel.get_params()


@dataclass
class _Spec:
    """A kernel expression as batchgp reads it."""

    kernel: str
    hyps: dict = field(default_factory=dict)  # target -> _Hyp (outputscale / noise may be absent)
    isotropic: bool = False  # one length_scale for several features, to be fitted


def _read_kernel(kernel: Any, d: int) -> _Spec:
    """Parses `kernel` for data with d features (names as scikit-learn's get_params spells them)."""
    terms = [(kernel, "")]
    white = None
    if isinstance(kernel, K.Sum):
        a, b = (kernel.k1, "k1__"), (kernel.k2, "k2__")
        if isinstance(a[0], K.WhiteKernel):
            a, b = b, a
        if not isinstance(b[0], K.WhiteKernel):
            raise _refuse(kernel, "a sum other than kernel + WhiteKernel")
        terms, white = [a], b
    main, prefix = terms[0]
    const = None
    if isinstance(main, K.Product):
        a, b = (main.k1, prefix + "k1__"), (main.k2, prefix + "k2__")
        if isinstance(b[0], K.ConstantKernel):
            a, b = b, a
        if not isinstance(a[0], K.ConstantKernel):
            raise _refuse(kernel, "a product other than ConstantKernel * kernel")
        const, (main, prefix) = a, b
    spec = _Spec("")
    if type(main) is K.RBF or (type(main) is K.Matern and np.isinf(main.nu)):
        spec.kernel = "rbf"
    elif type(main) is K.Matern and float(main.nu) in _MATERN:
        spec.kernel = _MATERN[float(main.nu)]
    elif type(main) is K.RationalQuadratic:
        spec.kernel = "rq"
    else:
        nu = f"(nu={main.nu})" if hasattr(main, "nu") else ""
        raise _refuse(kernel, f"{type(main).__name__}{nu} is not a kernel batchgp has")

    def hyp(target: str, k: Any, attr: str, name: str) -> _Hyp:
        h = getattr(k, "hyperparameter_" + attr)
        b = np.broadcast_to(np.atleast_2d(h.bounds), (h.n_elements, 2)) if not h.fixed else np.zeros((1, 2))
        return _Hyp(target, np.atleast_1d(np.asarray(getattr(k, attr), dtype=np.float64)), b, h.fixed, name + attr)

    ls = hyp("lengthscale", main, "length_scale", prefix)
    if ls.value.size not in (1, d):
        raise BatchGPError(f"array `length_scale` has {ls.value.size} entries, expected 1 or {d} (the features)")
    spec.isotropic = ls.value.size == 1 and d > 1 and not ls.fixed
    spec.hyps["lengthscale"] = ls
    if spec.kernel == "rq":
        spec.hyps["alpha"] = hyp("alpha", main, "alpha", prefix)
    if const is not None:
        spec.hyps["outputscale"] = hyp("outputscale", const[0], "constant_value", const[1])
    if white is not None:
        spec.hyps["noise"] = hyp("noise", white[0], "noise_level", white[1])
    return spec


class GaussianProcessRegressor(RegressorMixin, BaseEstimator):
    """scikit-learn's GaussianProcessRegressor, its fit run by batchgp (one GP per target).

    Parameters
    ----------
    kernel : scikit-learn kernel, optional
        ``[ConstantKernel *] (RBF | Matern | RationalQuadratic) [+ WhiteKernel]``; default
        ``ConstantKernel(1.0, "fixed") * RBF(1.0, "fixed")``, as scikit-learn's.
    alpha : float or array (n_samples,)
        Added to the diagonal of the training covariance (known noise variance).
    optimizer : "fmin_l_bfgs_b" or None
        batchgp's L-BFGS-B within the kernel's bounds; None keeps the kernel's hyperparameters.
    n_restarts_optimizer : int
        Extra starts per target (batchgp's spread restarts); the best is kept.
    normalize_y : bool
        Fit on y standardised per target; predictions in y's units.
    copy_X_train : bool
        Keep a copy of X (else a reference).
    n_targets : int, optional
        Targets of y; checked at fit, used by predictions from the prior before fit.
    random_state : int, RandomState or None
        Seed of the restarts.

    Attributes
    ----------
    kernel_ : the fitted kernel (of the first target); kernels_ : list, one per target;
    log_marginal_likelihood_value_ : float, the total over targets;
    log_marginal_likelihood_values_ : (n_targets,); X_train_, y_train_; n_features_in_;
    status_ : (n_targets,) batchgp status codes; result_ : batchgp.FitResult.
    """

    def __init__(
        self,
        kernel: Any = None,
        *,
        alpha: Any = 1e-10,
        optimizer: Any = "fmin_l_bfgs_b",
        n_restarts_optimizer: int = 0,
        normalize_y: bool = False,
        copy_X_train: bool = True,
        n_targets: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.kernel = kernel
        self.alpha = alpha
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.normalize_y = normalize_y
        self.copy_X_train = copy_X_train
        self.n_targets = n_targets
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # unfitted, it predicts from the prior, as scikit-learn's does
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _kernel(self) -> Any:
        if self.kernel is None:
            return K.ConstantKernel(1.0, constant_value_bounds="fixed") * K.RBF(1.0, length_scale_bounds="fixed")
        return clone(self.kernel)

    # -- fit ---------------------------------------------------------------------------------

    def _batch(self, spec: _Spec, targets: int, values: dict | None = None) -> dict:
        """batchgp.fit's arguments (init, fix, bounds, yvar) for `targets` GPs."""
        d = self.X_train_.shape[1]
        v = {t: h.value for t, h in spec.hyps.items()} if values is None else values
        ls = np.broadcast_to(v["lengthscale"], (targets, d))
        full = lambda t, default: np.full(targets, float(np.ravel(v[t])[0]) if t in v else default)
        init = Params(ls, full("outputscale", 1.0), full("noise", _NO_NOISE), 0.0,
                      full("alpha", 1.0) if spec.kernel == "rq" else None, spec.kernel)
        fix = ["mean"] + [t for t in ("lengthscale", "outputscale", "noise", "alpha")
                          if t not in spec.hyps and (t != "alpha" or spec.kernel == "rq")]
        fix += [t for t, h in spec.hyps.items() if h.fixed or self.optimizer is None]
        bounds = {}
        for t, h in spec.hyps.items():
            if t not in fix:
                lo, hi = h.bounds[:, 0], h.bounds[:, 1]
                if t == "lengthscale":
                    bounds[t] = (np.broadcast_to(lo, (d,)), np.broadcast_to(hi, (d,)))
                else:
                    bounds[t] = (lo[0], hi[0])
        n = self.X_train_.shape[0]
        yvar = np.broadcast_to(np.asarray(self.alpha, dtype=np.float64), (n,))
        return {"init": init, "fix": sorted(set(fix)), "bounds": bounds or None,
                "yvar": np.broadcast_to(yvar, (targets, n)), "kernel": spec.kernel}

    def fit(self, X: Any, y: Any) -> GaussianProcessRegressor:
        """Fits one GP per target of y.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        if self.optimizer not in ("fmin_l_bfgs_b", None):
            raise ValueError(f"optimizer {self.optimizer!r}: batchgp.sklearn runs its own L-BFGS-B "
                             "('fmin_l_bfgs_b') or none (None)")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, ensure_2d=True, dtype=np.float64)
        alpha = np.asarray(self.alpha, dtype=np.float64)
        if alpha.ndim and alpha.shape[0] != y.shape[0]:
            raise ValueError(f"alpha must be a scalar or an array with same number of entries as y. "
                             f"({alpha.shape[0]} != {y.shape[0]})")
        y2 = y.reshape(y.shape[0], -1)
        if self.n_targets is not None and y2.shape[1] != self.n_targets:
            raise ValueError(f"The number of targets seen in `y` is different from the parameter `n_targets`. "
                             f"Got {y2.shape[1]} != {self.n_targets}.")
        if self.normalize_y:
            self._y_train_mean = y2.mean(axis=0)
            std = y2.std(axis=0)
            self._y_train_std = np.where(std < 10 * np.finfo(std.dtype).eps, 1.0, std)
        else:
            self._y_train_mean, self._y_train_std = np.zeros(y2.shape[1]), np.ones(y2.shape[1])
        self.X_train_ = np.copy(X) if self.copy_X_train else X
        self.y_train_ = np.copy(y) if self.copy_X_train else y
        self._yT = np.ascontiguousarray(((y2 - self._y_train_mean) / self._y_train_std).T)
        kernel = self._kernel()
        spec = _read_kernel(kernel, X.shape[1])
        t = y2.shape[1]
        seed = int(check_random_state(self.random_state).randint(2**31 - 1)) if self.n_restarts_optimizer else 0
        args = self._batch(spec, t)
        fitter = fit_isotropic if spec.isotropic else _fit
        r = fitter(self.X_train_, self._yT, restarts=int(self.n_restarts_optimizer), seed=seed, **args)
        self.result_, self.params_, self.status_ = r, r.params, r.status
        self._spec, self._yvar, self._squeeze = spec, args["yvar"], y.ndim == 1 or y2.shape[1] == 1
        self.kernels_ = [self._fitted_kernel(kernel, spec, r.params, i) for i in range(t)]
        self.kernel_ = self.kernels_[0]
        self.log_marginal_likelihood_values_ = np.asarray(r.mll)
        self.log_marginal_likelihood_value_ = float(np.sum(r.mll))
        return self

    @staticmethod
    def _fitted_kernel(kernel: Any, spec: _Spec, p: Params, i: int) -> Any:
        values = {"lengthscale": p.lengthscale[i], "outputscale": p.outputscale[i], "noise": p.noise[i],
                  "alpha": None if p.alpha is None else p.alpha[i]}
        new = {}
        for t, h in spec.hyps.items():
            v = values[t]
            new[h.name] = (v if h.value.size > 1 else float(v[0])) if t == "lengthscale" else float(v)
        return kernel.clone_with_theta(kernel.theta).set_params(**new)

    # -- predict -----------------------------------------------------------------------------

    def _prior(self, X: Any, return_std: bool, return_cov: bool):
        kernel = self._kernel()
        X = validate_data(self, X, reset=False, ensure_2d=True, dtype=np.float64)
        n_targets = self.n_targets or 1
        mean = np.zeros((X.shape[0], n_targets)).squeeze()
        if return_cov:
            cov = kernel(X)
            return mean, cov if n_targets == 1 else np.repeat(cov[:, :, None], n_targets, axis=2)
        if return_std:
            std = np.sqrt(kernel.diag(X))
            return mean, std if n_targets == 1 else np.repeat(std[:, None], n_targets, axis=1)
        return mean

    def predict(self, X: Any, return_std: bool = False, return_cov: bool = False):
        """The posterior (the prior before fit) at X, in scikit-learn's shapes.

        Returns
        -------
        y_mean : (n_samples,) or (n_samples, n_targets)
        y_std : same shape, when return_std (of f, plus the WhiteKernel's noise level)
        y_cov : (n_samples, n_samples) or (n_samples, n_samples, n_targets), when return_cov
        """
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        if not hasattr(self, "X_train_"):
            return self._prior(X, return_std, return_cov)
        X = validate_data(self, X, reset=False, ensure_2d=True, dtype=np.float64)
        p = _predict(self.X_train_, self._yT, self.params_, X, yvar=self._yvar, kernel=self.params_.kernel,
                     full_covariance=bool(return_cov))
        s, mu = self._y_train_std, self._y_train_mean
        mean = (p.mean * s[:, None] + mu[:, None]).T  # (n, T)
        sq = (lambda a: a[..., 0]) if self._squeeze else (lambda a: a)
        if return_cov:
            m = X.shape[0]
            cov = p.covariance + self.params_.noise[:, None, None] * np.eye(m)[None]
            return sq(mean), sq(np.moveaxis(cov * (s**2)[:, None, None], 0, -1))
        if return_std:
            return sq(mean), sq((np.sqrt(np.maximum(p.var_y, 0.0)) * s[:, None]).T)
        return sq(mean)

    def sample_y(self, X: Any, n_samples: int = 1, random_state: Any = 0) -> np.ndarray:
        """Draws from the posterior (the prior before fit), as scikit-learn draws them.

        Returns
        -------
        array (n_samples_X, n_samples) or (n_samples_X, n_targets, n_samples)
        """
        rng = check_random_state(random_state)
        mean, cov = self.predict(X, return_cov=True)
        if mean.ndim == 1:
            return rng.multivariate_normal(mean, cov, n_samples).T
        draws = [rng.multivariate_normal(mean[:, t], cov[..., t], n_samples).T[:, np.newaxis]
                 for t in range(mean.shape[1])]
        return np.hstack(draws)

    def log_marginal_likelihood(self, theta: Any = None, eval_gradient: bool = False, clone_kernel: bool = True):
        """The log marginal likelihood (total over targets) at the kernel's log-hyperparameters.

        Parameters
        ----------
        theta : array (n_kernel_params,), optional
            As ``kernel_.theta``: the log of the free hyperparameters. None: the fitted value.
        eval_gradient : bool
            Also return the gradient with respect to theta.

        Returns
        -------
        float, and the gradient (n_kernel_params,) when eval_gradient
        """
        check_is_fitted(self)
        if theta is None:
            if eval_gradient:
                raise ValueError("Gradient can only be evaluated for theta!=None")
            return self.log_marginal_likelihood_value_
        kernel = self.kernel_.clone_with_theta(np.asarray(theta, dtype=np.float64))
        spec = _read_kernel(kernel, self.X_train_.shape[1])
        t = self._yT.shape[0]
        args = self._batch(spec, t)
        r = _mll(self.X_train_, self._yT, args["init"], yvar=args["yvar"], kernel=spec.kernel)
        value = float(np.sum(r.mll))
        if not eval_gradient:
            return value
        grads = {"lengthscale": r.grad_log_lengthscale.sum(axis=0), "outputscale": [r.grad_log_outputscale.sum()],
                 "noise": [r.grad_log_noise.sum()],
                 "alpha": [r.grad_log_alpha.sum()] if spec.kernel == "rq" else None}
        if spec.hyps["lengthscale"].value.size == 1:  # one length_scale for every feature
            grads["lengthscale"] = [r.grad_log_lengthscale.sum()]
        by_name = {h.name: np.atleast_1d(grads[tt]) for tt, h in spec.hyps.items()}
        g = [by_name[h.name] for h in kernel.hyperparameters if not h.fixed]
        return value, (np.concatenate(g) if g else np.zeros(0))
