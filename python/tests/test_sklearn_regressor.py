"""batchgp.sklearn.GaussianProcessRegressor against scikit-learn's own: check_estimator, the
objective per target (>= scikit-learn's own fit of that target), predictions, std, cov, samples
and log_marginal_likelihood(theta) equal to scikit-learn's at the same kernel; Pipeline,
GridSearchCV, cross_val_score, clone; refusals. And BatchGP as a scikit-learn estimator."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import batchgp
import batchgp.sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor as SkGPR
from sklearn.gaussian_process import kernels as K
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

GPR = batchgp.sklearn.GaussianProcessRegressor


def data(n=40, d=2, targets=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 3, (n, d))
    cols = [np.sin(2 * x[:, 0] + t) + 0.3 * x[:, -1] * t + 0.05 * rng.standard_normal(n) for t in range(targets or 1)]
    y = np.stack(cols, axis=1) * 2 + 1
    return x, (y[:, 0] if targets is None else y)


def sk_fit(kernel, x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SkGPR(kernel, **kw).fit(x, y)


def test_check_estimator():
    check_estimator(GPR())
    # Every hyperparameter fitted, for any number of features (an isotropic length_scale).
    check_estimator(GPR(K.ConstantKernel() * K.Matern(1.0, nu=1.5) + K.WhiteKernel(), normalize_y=True))
    check_estimator(GPR(K.ConstantKernel() * K.RBF(1.0, "fixed") + K.WhiteKernel(), n_restarts_optimizer=1))


def test_single_target_fit_matches_or_beats_scikit_learn_and_predicts_as_it_does():
    x, y = data(d=2)
    for kernel in (
        K.ConstantKernel(1.0) * K.RBF([1.0, 1.0]) + K.WhiteKernel(0.1),
        K.Matern([1.0, 1.0], nu=2.5) * K.ConstantKernel(2.0) + K.WhiteKernel(0.1, (1e-6, 1.0)),
        K.ConstantKernel() * K.Matern([0.5, 2.0], (1e-2, 1e2), nu=0.5),
        # rq's alpha bounded: towards its default bound 1e5, rq's (1 + r2 / (2 alpha))^-alpha
        # loses digits differently in each library.
        K.ConstantKernel() * K.RationalQuadratic(1.0, 1.0, "fixed", (1e-2, 10.0)) + K.WhiteKernel(),
        K.ConstantKernel() * K.RBF(1.0) + K.WhiteKernel(),  # isotropic: scipy's L-BFGS-B over batchgp.mll
        K.ConstantKernel() * K.RationalQuadratic(alpha_bounds=(1e-2, 10.0)) + K.WhiteKernel(),
    ):
        # alpha 1e-5: the kernel without a WhiteKernel stays well enough conditioned for 1e-8.
        ours = GPR(kernel, normalize_y=True, alpha=1e-5).fit(x, y)
        sk = sk_fit(kernel, x, y, normalize_y=True, alpha=1e-5)
        a, b = ours.log_marginal_likelihood_value_, sk.log_marginal_likelihood_value_
        assert a >= b - 1e-6 * abs(b), (kernel, a, b)
        # At our fitted kernel, scikit-learn's own GPR gives the same lml, gradient and predictions.
        same = sk_fit(ours.kernel_, x, y, normalize_y=True, alpha=1e-5, optimizer=None)
        np.testing.assert_allclose(same.log_marginal_likelihood_value_, a, rtol=1e-8, atol=1e-8)
        theta = ours.kernel_.theta + 0.3  # off the optimum, where the gradient is not ~0
        v, g = ours.log_marginal_likelihood(theta, eval_gradient=True)
        v2, g2 = same.log_marginal_likelihood(theta, eval_gradient=True)
        np.testing.assert_allclose(v, v2, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(g, g2, rtol=1e-6, atol=1e-6 * np.abs(g2).max())
        xt = np.random.default_rng(1).uniform(0, 3, (9, 2))
        for kw in ({}, {"return_std": True}, {"return_cov": True}):
            for o, s in zip(np.atleast_1d(ours.predict(xt, **kw)) if not kw else ours.predict(xt, **kw),
                            np.atleast_1d(same.predict(xt, **kw)) if not kw else same.predict(xt, **kw)):
                np.testing.assert_allclose(o, s, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ours.sample_y(xt, 3, random_state=4), same.sample_y(xt, 3, random_state=4),
                                   rtol=1e-6, atol=1e-8)


def test_multi_target_fits_each_target_as_scikit_learn_fits_it_alone():
    x, y = data(d=2, targets=4, seed=2)
    kernel = K.ConstantKernel() * K.RBF([1.0, 1.0]) + K.WhiteKernel(0.1)
    ours = GPR(kernel, alpha=np.full(40, 1e-8)).fit(x, y)
    assert len(ours.kernels_) == 4 and ours.kernel_ is ours.kernels_[0]
    assert ours.predict(x[:5]).shape == (5, 4)
    mean, std = ours.predict(x[:5], return_std=True)
    _, cov = ours.predict(x[:5], return_cov=True)
    assert std.shape == (5, 4) and cov.shape == (5, 5, 4)
    assert ours.sample_y(x[:5], 2).shape == (5, 4, 2)
    np.testing.assert_allclose(ours.log_marginal_likelihood_value_, ours.log_marginal_likelihood_values_.sum())
    for t in range(4):
        sk = sk_fit(kernel, x, y[:, t], alpha=1e-8)
        b = sk.log_marginal_likelihood_value_
        assert ours.log_marginal_likelihood_values_[t] >= b - 1e-6 * abs(b), (t, ours.log_marginal_likelihood_values_[t], b)
        same = sk_fit(ours.kernels_[t], x, y[:, t], alpha=1e-8, optimizer=None)
        np.testing.assert_allclose(mean[:, t], same.predict(x[:5]), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(std[:, t], same.predict(x[:5], return_std=True)[1], rtol=1e-7, atol=1e-10)


def test_unfitted_predicts_from_the_prior_as_scikit_learn():
    x, _ = data(d=2)
    kernel = K.ConstantKernel(2.0) * K.RBF([1.0, 0.5])
    for kw in ({"return_std": True}, {"return_cov": True}):
        for o, s in zip(GPR(kernel).predict(x[:6], **kw), SkGPR(kernel).predict(x[:6], **kw)):
            np.testing.assert_allclose(o, s, rtol=1e-12)


def test_pipeline_grid_search_cross_val_and_clone():
    x, y = data(n=60, d=2, seed=3)
    pipe = make_pipeline(StandardScaler(), GPR(K.ConstantKernel() * K.RBF([1.0, 1.0]) + K.WhiteKernel()))
    grid = GridSearchCV(
        pipe,
        {"gaussianprocessregressor__kernel": [
            K.ConstantKernel() * K.RBF([1.0, 1.0]) + K.WhiteKernel(),
            K.ConstantKernel() * K.Matern([1.0, 1.0], nu=1.5) + K.WhiteKernel(),
            K.ConstantKernel() * K.Matern([1.0, 1.0], nu=0.5) + K.WhiteKernel(),
        ]},
        cv=3,
    ).fit(x, y)
    assert grid.best_score_ > 0.9 and len(grid.cv_results_["mean_test_score"]) == 3
    scores = cross_val_score(GPR(K.ConstantKernel() * K.RBF([1.0, 1.0]) + K.WhiteKernel()), x, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.9)
    est = GPR(K.RBF([1.0, 1.0]), alpha=0.1, n_restarts_optimizer=2, random_state=0)
    c = clone(est)
    assert c.get_params()["n_restarts_optimizer"] == 2 and c.kernel is not est.kernel
    np.testing.assert_allclose(c.fit(x, y).predict(x[:3]), est.fit(x, y).predict(x[:3]))


def test_refusals():
    x, y = data(d=2)
    for kernel, match in [
        (K.RBF([1.0, 1.0]) + K.RBF([1.0, 1.0]), "a sum other than kernel \\+ WhiteKernel"),
        (K.RBF([1.0, 1.0]) * K.Matern([1.0, 1.0]), "a product other than ConstantKernel"),
        (K.DotProduct(), "DotProduct is not a kernel batchgp has"),
        (K.Matern([1.0, 1.0], nu=0.7), r"Matern\(nu=0.7\)"),
    ]:
        with pytest.raises(batchgp.BatchGPError, match=match):
            GPR(kernel).fit(x, y)
    with pytest.raises(ValueError, match="L-BFGS-B"):
        GPR(optimizer=lambda *a: None).fit(x, y)
    # A fixed isotropic length_scale is fine: nothing is shared in a fit.
    GPR(K.RBF(1.0, "fixed") + K.WhiteKernel()).fit(x, y)


def test_batchgp_estimator_is_a_scikit_learn_estimator():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 30, 1))
    y = np.sin(6 * x[..., 0]) + 0.05 * rng.standard_normal((3, 30))
    est = batchgp.BatchGP()
    assert isinstance(est, sklearn.base.BaseEstimator)
    with pytest.raises(NotFittedError):
        est.predict(x[0])
    with pytest.raises(batchgp.BatchGPError):
        est.predict(x[0])
    est.fit(x, y)
    pred = est.predict(x)
    from sklearn.metrics import r2_score

    want = np.mean([r2_score(y[b], pred[b]) for b in range(3)])
    np.testing.assert_allclose(est.score(x, y), want, rtol=1e-12)
    mask = np.ones((3, 30))
    mask[1, 20:] = 0
    want = np.mean([r2_score(y[b, mask[b] > 0], pred[b, mask[b] > 0]) for b in range(3)])
    np.testing.assert_allclose(est.score(x, y, mask=mask), want, rtol=1e-12)
