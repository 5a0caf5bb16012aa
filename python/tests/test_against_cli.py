"""Every API function against the Rust results: the CLI on the same data, params and priors.

The binding and the CLI call the same core, so they must agree to rounding: a difference means
the binding passed something else (log vs natural units, a prior's broadcasting, an option).
"""

import numpy as np
import pytest
from conftest import KERNELS, assert_close, make_data, make_params

import batchgp

PRIORS = {
    # per dimension (D list), per member (B list), scalars
    "lengthscale": batchgp.Gamma([2.0, 3.0], [4.0, 6.0]),
    "outputscale": batchgp.LogNormal([0.0, 0.1, -0.1], 1.0),
    "noise": batchgp.HalfCauchy(0.1),
    "mean": batchgp.Normal(0.0, [1.0, 2.0, 3.0]),
}


MLL_FIELDS = batchgp.MllResult._fields  # every array of the CLI's mll output but grad_log_alpha


def ragged():
    """Three members with 25, 19 and 12 observed points; the padding holds NaN."""
    x, y = make_data(3, 25, 2)
    mask = np.ones((3, 25))
    mask[1, 19:] = 0
    mask[2, ::2] = 0
    mask[2, 20:] = 0
    x, y = x.copy(), y.copy()
    x[mask == 0] = np.nan
    y[mask == 0] = np.nan
    yvar = np.where(mask == 1, 0.01 * np.arange(25)[None, :] / 25, np.nan)
    return x, y, mask, yvar


@pytest.mark.parametrize("kernel", KERNELS)
def test_mll_matches_cli(run_cli, kernel):
    x, y, mask, yvar = ragged()
    params = make_params(3, 2, kernel)
    priors = dict(PRIORS)
    if kernel == "rq":
        priors["alpha"] = batchgp.Gamma(2.0, 1.0)
    ours = batchgp.mll(x, y, params, mask=mask, yvar=yvar, priors=priors, backend="cpu")
    theirs = run_cli.ok(
        "mll",
        "--data",
        run_cli.data(x, y, mask, yvar),
        "--params",
        run_cli.params(params),
        "--priors",
        run_cli.priors(priors),
    )
    for name in MLL_FIELDS + (("grad_log_alpha",) if kernel == "rq" else ()):
        assert_close(getattr(ours, name), theirs[name], err_msg=name)
    assert np.all(np.isfinite(ours.objective))
    assert np.all(ours.log_prior != 0)


def test_mll_shared_x_and_kernel_override(run_cli):
    x, y = make_data(4, 20, 3, shared=True)
    params = make_params(4, 3, "matern32")
    ours = batchgp.mll(x, y, params, kernel="matern32", backend="cpu")
    theirs = run_cli.ok("mll", "--data", run_cli.data(x, y), "--params", run_cli.params(params))
    for name in MLL_FIELDS:
        assert_close(getattr(ours, name), theirs[name], err_msg=name)
    assert np.all(ours.log_prior == 0)
    assert_close(ours.objective, ours.mll)


FIT_FIELDS = ("mll", "log_prior", "objective", "status", "jitter", "iterations")


def fit_matches(ours, theirs, rtol=1e-9):
    p = ours.params
    assert_close(p.log_lengthscale, theirs["log_lengthscale"], rtol, 1e-9, "log_lengthscale")
    assert_close(p.log_outputscale, theirs["log_outputscale"], rtol, 1e-9, "log_outputscale")
    assert_close(p.log_noise, theirs["log_noise"], rtol, 1e-9, "log_noise")
    assert_close(p.mean, theirs["mean"], rtol, 1e-9, "mean")
    if p.alpha is not None:
        assert_close(p.log_alpha, theirs["log_alpha"], rtol, 1e-9, "log_alpha")
    assert str(theirs["kernel"]) == ours.kernel
    for name in FIT_FIELDS:
        assert_close(getattr(ours, name), theirs[name], rtol, 1e-9, name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fit_matches_cli(run_cli, kernel):
    x, y, mask, yvar = ragged()
    ours = batchgp.fit(x, y, mask=mask, yvar=yvar, kernel=kernel, priors=PRIORS, backend="cpu")
    theirs = run_cli.ok(
        "fit", "--data", run_cli.data(x, y, mask, yvar), "--priors", run_cli.priors(PRIORS), "--kernel", kernel
    )
    fit_matches(ours, theirs)
    assert set(ours.status) <= {0, 1}, ours.summary()
    assert list(ours.reason) == ["converged"] * 3


def test_fit_options_match_cli(run_cli):
    """init, fix, restarts, bounds, max_iter, seed, optimizer: the same fit."""
    x, y = make_data(4, 30, 2, seed=3)
    init = make_params(4, 2, "rbf", seed=5)
    cases = [
        ({"fix": ("mean", "noise"), "init": init}, ["--fix", "mean,noise", "--init", run_cli.params(init)]),
        ({"restarts": 2, "seed": 7}, ["--restarts", "2", "--seed", "7"]),
        ({"bounds": (1e-3, 1e3)}, ["--bounds", "0.001,1000"]),
        ({"max_iter": 3}, ["--max-iter", "3"]),
        ({"optimizer": "adam", "max_iter": 50}, ["--optimizer", "adam", "--max-iter", "50"]),
    ]
    for kwargs, args in cases:
        ours = batchgp.fit(x, y, backend="cpu", **kwargs)
        theirs = run_cli.ok("fit", "--data", run_cli.data(x, y), *args)
        fit_matches(ours, theirs)
    fixed = batchgp.fit(x, y, fix=["mean", "noise"], init=init, backend="cpu")
    assert_close(fixed.mean, init.mean, 0, 0)
    assert_close(fixed.noise, init.noise, 0, 0)
    short = batchgp.fit(x, y, max_iter=3, backend="cpu")
    assert np.all(short.status == 2) and np.all(short.iterations <= 3)
    assert set(short.reason) == {"iteration limit"}


@pytest.mark.parametrize("kernel", ["rbf", "rq"])
def test_predict_matches_cli(run_cli, kernel):
    x, y, mask, yvar = ragged()
    params = make_params(3, 2, kernel)
    rng = np.random.default_rng(4)
    for x_test in (rng.uniform(0, 1, (7, 2)), rng.uniform(0, 1, (3, 5, 2))):
        ours = batchgp.predict(
            x, y, params, x_test, mask=mask, yvar=yvar, samples=4, seed=9, full_covariance=True, backend="cpu"
        )
        theirs = run_cli.ok(
            "predict",
            "--data",
            run_cli.data(x, y, mask, yvar),
            "--params",
            run_cli.params(params),
            "--test",
            run_cli.test_points(x_test),
            "--samples",
            "4",
            "--seed",
            "9",
            "--full-covariance",
        )
        for name in ("mean", "var", "var_y", "lower", "upper", "status", "jitter", "covariance", "samples"):
            assert_close(getattr(ours, name), theirs[name], err_msg=name)
        m = x_test.shape[-2]
        assert ours.mean.shape == (3, m) and ours.samples.shape == (4, 3, m) and ours.covariance.shape == (3, m, m)
    plain = batchgp.predict(x, y, params, x_test, mask=mask, yvar=yvar, backend="cpu")
    assert plain.samples is None and plain.covariance is None


def test_fit_result_feeds_predict_and_mll(run_cli):
    x, y = make_data(3, 20, 2)
    r = batchgp.fit(x, y, backend="cpu")
    theirs = run_cli.ok("mll", "--data", run_cli.data(x, y), "--params", run_cli.params(r.params))
    m = batchgp.mll(x, y, r)  # a FitResult stands for its params
    assert_close(m.objective, r.objective, 1e-12)
    assert_close(m.objective, theirs["objective"])
    assert np.max(np.abs(m.grad_log_lengthscale)) < 1e-3
    p = batchgp.predict(x, y, r, x[0])
    assert p.mean.shape == (3, 20)


def test_sample_prior_moments():
    """Draws of f at (N, D) inputs have mean m and covariance k(x, x); with noise=True, plus
    noise on the diagonal; a seed reproduces them; batched inputs give each member its own."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 1))
    params = batchgp.Params([[0.3], [0.6]], [1.0, 2.0], [0.05, 0.2], [0.0, 3.0], kernel="matern52")
    s = batchgp.sample_prior(x, params, samples=20000, seed=1)
    assert s.shape == (20000, 2, 4)
    assert np.array_equal(s, batchgp.sample_prior(x, params, samples=20000, seed=1))
    assert not np.array_equal(s, batchgp.sample_prior(x, params, samples=20000, seed=2))
    r = np.abs(x - x.T)
    for b in range(2):
        u = np.sqrt(5) * r / params.lengthscale[b, 0]
        k = params.outputscale[b] * (1 + u + u * u / 3) * np.exp(-u)
        assert_close(s[:, b].mean(axis=0), params.mean[b], 0, 0.05 * np.sqrt(params.outputscale[b]))
        assert_close(np.cov(s[:, b].T), k, 0, 0.06 * params.outputscale[b])
        sy = batchgp.sample_prior(x, params, samples=20000, seed=1, noise=True)
        assert_close(np.cov(sy[:, b].T), k + params.noise[b] * np.eye(4), 0, 0.06 * params.outputscale[b])
    xb = rng.uniform(0, 1, (2, 6, 1))
    assert batchgp.sample_prior(xb, params, samples=3).shape == (3, 2, 6)


@pytest.mark.parametrize("kernel", ["rbf", "rq"])
def test_fit_result_to_npz_is_the_cli_format(run_cli, tmp_path, kernel):
    """FitResult.to_npz writes the CLI's F.npz: the CLI predicts from it and shows it, and the
    arrays read back equal the fit's."""
    x, y, mask, yvar = ragged()
    fit = batchgp.fit(x, y, mask=mask, yvar=yvar, kernel=kernel, backend="cpu")
    path = tmp_path / "F.npz"
    fit.to_npz(path)
    f = np.load(path)
    assert str(f["kernel"]) == kernel
    np.testing.assert_allclose(np.exp(f["log_lengthscale"]), fit.lengthscale, rtol=1e-15)
    np.testing.assert_array_equal(f["status"], fit.status)
    np.testing.assert_array_equal(f["objective"], fit.objective)
    back = batchgp.Params.from_log(
        f["log_lengthscale"],
        f["log_outputscale"],
        f["log_noise"],
        f["mean"],
        f.get("log_alpha"),
        kernel=str(f["kernel"]),
    )
    xt = np.linspace(0, 1, 7)[:, None].repeat(2, 1)
    ours = batchgp.predict(x, y, back, xt, mask=mask, yvar=yvar, backend="cpu")
    data = run_cli.data(x, y, mask, yvar)
    np.savez(tmp_path / "T.npz", x=xt)
    theirs = run_cli.ok("predict", "--data", data, "--params", str(path), "--test", str(tmp_path / "T.npz"))
    assert_close(ours.mean, theirs["mean"], 1e-12, 1e-12, "mean")
