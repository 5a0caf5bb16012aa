"""Against scikit-learn's GaussianProcessRegressor, member by member: the MLL and its gradient,
the posterior, and a fit from the same start (at least as good an optimum).

scikit-learn's model: ConstantKernel(s) * base(l) + WhiteKernel(noise), zero mean, alpha = 0;
its theta is log(s), log(l) (log(alpha), log(l) for RationalQuadratic), log(noise), the same
coordinates as batchgp's gradient. Its RationalQuadratic is isotropic, so rq runs with D = 1.
"""

import numpy as np
import pytest
from conftest import KERNELS, assert_close, make_data

import batchgp

sk_gp = pytest.importorskip("sklearn.gaussian_process")
sk_k = pytest.importorskip("sklearn.gaussian_process.kernels")


def sklearn_kernel(kernel, s, l, noise, alpha=None, bounds=(1e-5, 1e5)):
    c = sk_k.ConstantKernel(s, bounds)
    w = sk_k.WhiteKernel(noise, bounds)
    if kernel == "rbf":
        base = sk_k.RBF(l, [bounds] * len(l))
    elif kernel == "rq":
        base = sk_k.RationalQuadratic(float(l[0]), alpha, bounds, bounds)
    else:
        nu = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}[kernel]
        base = sk_k.Matern(l, [bounds] * len(l), nu=nu)
    return c * base + w


def case(kernel, b=3, n=30, seed=0):
    d = 1 if kernel == "rq" else 2
    x, y = make_data(b, n, d, seed)
    y = y - y.mean(axis=1, keepdims=True)  # scikit-learn has no constant mean: ours is fixed at 0
    rng = np.random.default_rng(seed + 10)
    params = batchgp.Params(
        rng.uniform(0.2, 0.7, (b, d)),
        rng.uniform(0.5, 2.0, b),
        rng.uniform(0.01, 0.1, b),
        np.zeros(b),
        rng.uniform(0.5, 2.0, b) if kernel == "rq" else None,
        kernel,
    )
    return x, y, params


def member_kernel(params, m):
    a = None if params.alpha is None else float(params.alpha[m])
    return sklearn_kernel(params.kernel, params.outputscale[m], params.lengthscale[m], params.noise[m], a)


@pytest.mark.parametrize("kernel", KERNELS)
def test_mll_and_gradient(kernel):
    x, y, params = case(kernel)
    r = batchgp.mll(x, y, params, backend="cpu")
    for m in range(len(y)):
        gp = sk_gp.GaussianProcessRegressor(member_kernel(params, m), alpha=0.0, optimizer=None).fit(x[m], y[m])
        lml, grad = gp.log_marginal_likelihood(gp.kernel_.theta, eval_gradient=True)
        assert_close(r.mll[m], lml, 1e-10, 1e-10)
        if kernel == "rq":
            # scikit-learn orders a kernel's hyperparameters by name: alpha before length_scale
            ours = [r.grad_log_outputscale[m], r.grad_log_alpha[m], r.grad_log_lengthscale[m, 0], r.grad_log_noise[m]]
        else:
            ours = [r.grad_log_outputscale[m], *r.grad_log_lengthscale[m], r.grad_log_noise[m]]
        assert_close(ours, grad, 1e-7, 1e-8)


@pytest.mark.parametrize("kernel", KERNELS)
def test_predict(kernel):
    x, y, params = case(kernel)
    x_test = np.random.default_rng(3).uniform(-0.2, 1.2, (15, x.shape[-1]))
    p = batchgp.predict(x, y, params, x_test, full_covariance=True, backend="cpu")
    fixed = ("lengthscale", "outputscale", "noise", "mean") + (("alpha",) if kernel == "rq" else ())
    est = batchgp.BatchGP(kernel, init=params, fix=fixed).fit(x, y)  # fitting nothing: params as given
    mean_e, cov_e = est.predict(x_test, return_cov=True)
    for m in range(len(y)):
        gp = sk_gp.GaussianProcessRegressor(member_kernel(params, m), alpha=0.0, optimizer=None).fit(x[m], y[m])
        mean, std = gp.predict(x_test, return_std=True)  # std of y: WhiteKernel included
        _, cov = gp.predict(x_test, return_cov=True)
        assert_close(p.mean[m], mean, 1e-8, 1e-9)
        assert_close(np.sqrt(p.var_y[m]), std, 1e-7, 1e-9)
        assert_close(p.covariance[m] + params.noise[m] * np.eye(15), cov, 1e-7, 1e-9)
        assert_close(mean_e[m], mean, 1e-8, 1e-9)
        assert_close(cov_e[m], cov, 1e-7, 1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kernel", KERNELS)
def test_fit_from_the_same_start_is_at_least_as_good(kernel):
    x, y, params = case(kernel, b=4, n=40, seed=2)
    r = batchgp.fit(x, y, kernel=kernel, init=params, fix="mean", bounds=(1e-5, 1e5), backend="cpu")
    for m in range(len(y)):
        gp = sk_gp.GaussianProcessRegressor(member_kernel(params, m), alpha=0.0).fit(x[m], y[m])
        theirs = gp.log_marginal_likelihood_value_
        assert r.status[m] in (0, 1), r.summary()
        assert r.objective[m] >= theirs - 1e-6 * abs(theirs), (m, r.objective[m], theirs)
        # and scikit-learn agrees on the value at our optimum
        mine = member_kernel(r.params, m)
        gp_at_ours = sk_gp.GaussianProcessRegressor(mine, alpha=0.0, optimizer=None).fit(x[m], y[m])
        assert_close(gp_at_ours.log_marginal_likelihood_value_, r.mll[m], 1e-7, 1e-9)  # rq: alpha up to 1e5
