"""batchgp.BatchGP, the scikit-learn-style estimator, against the functions it wraps."""

import numpy as np
from conftest import assert_close, make_data

import batchgp


def test_fit_predict_sample():
    x, y = make_data(3, 30, 2)
    x_test = np.random.default_rng(2).uniform(0, 1, (11, 2))
    priors = {"noise": batchgp.LogNormal(-4.0, 1.0)}
    est = batchgp.BatchGP("matern52", priors, restarts=1)
    assert est.fit(x, y) is est
    r = batchgp.fit(x, y, kernel="matern52", priors=priors, restarts=1)
    assert_close(est.lengthscale_, r.lengthscale, 0, 0)
    for name in ("outputscale", "noise", "mean", "status"):
        assert_close(getattr(est, name + "_"), getattr(r, name), 0, 0)
    assert est.alpha_ is None and isinstance(est.result_, batchgp.FitResult)
    p = batchgp.predict(x, y, r.params, x_test, full_covariance=True)
    assert_close(est.predict(x_test), p.mean, 0, 0)
    _, std = est.predict(x_test, return_std=True)
    assert_close(std, np.sqrt(p.var_y), 0, 0)
    _mean, cov = est.predict(x_test, return_cov=True)
    assert_close(np.diagonal(cov, axis1=1, axis2=2), p.var_y, 1e-12, 0)
    draws = est.sample_y(x_test, n_samples=4000, random_state=3)
    assert draws.shape == (4000, 3, 11)
    assert np.array_equal(draws, est.sample_y(x_test, n_samples=4000, random_state=3))
    assert_close(draws.var(axis=0), p.var_y, 0.1, 0)  # draws of y: noise included
    assert_close(draws.mean(axis=0), p.mean, 0, 4 * np.sqrt(p.var_y.max() / 4000))


def test_sklearn_protocol():
    est = batchgp.BatchGP("rq", max_iter=50)
    params = est.get_params()
    assert params["kernel"] == "rq" and params["max_iter"] == 50 and params["priors"] is None
    assert set(params) >= {"kernel", "priors", "init", "fix", "restarts", "standardize", "bounds", "backend"}
    assert est.set_params(kernel="rbf", restarts=2) is est
    assert est.kernel == "rbf" and est.restarts == 2
    assert repr(est) == "BatchGP(max_iter=50, restarts=2)"
    try:
        est.set_params(learning_rate=0.1)
    except batchgp.BatchGPError as e:
        assert str(e).startswith("invalid option `learning_rate`: not a parameter of BatchGP")
    else:
        raise AssertionError("set_params accepted an unknown parameter")
    sk = __import__("pytest").importorskip("sklearn.base")
    clone = sk.clone(batchgp.BatchGP("matern32", restarts=1))
    assert clone.kernel == "matern32" and clone.restarts == 1


def test_mask_and_batched_test_points():
    x, y = make_data(2, 20, 1)
    mask = np.ones((2, 20))
    mask[1, 10:] = 0
    est = batchgp.BatchGP().fit(x, y, mask=mask)
    x_test = np.stack([x[0, :5], x[1, :5]])
    assert est.predict(x_test).shape == (2, 5)
    r = batchgp.fit(x, y, mask=mask)
    assert_close(est.predict(x_test), batchgp.predict(x, y, r, x_test, mask=mask).mean, 0, 0)


def test_default_fit_is_batchgp_fits_default_restarts_included():
    """BatchGP's defaults are batchgp.fit's: restarts is DEFAULT_RESTARTS, so on teachers where
    one start stops in a worse (noise-explained) optimum the estimator finds fit's optimum."""
    from test_restarts import student_init, teachers

    x, y = teachers()
    init = student_init(len(y))
    est = batchgp.BatchGP(init=init, fix="outputscale")
    assert est.restarts == batchgp.DEFAULT_RESTARTS == batchgp._batchgp.DEFAULT_RESTARTS
    assert repr(est).startswith("BatchGP(init=") and "restarts" not in repr(est)
    est.fit(x, y)
    r = batchgp.fit(x, y, init=init, fix="outputscale")
    assert est.result_ == r and est.result_.starts == batchgp.DEFAULT_RESTARTS + 1
    one = batchgp.fit(x, y, init=init, fix="outputscale", restarts=0)
    assert np.all(r.objective >= one.objective - 1e-9) and np.any(r.objective > one.objective + 1.0)
