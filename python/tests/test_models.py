"""One fit / evaluate / predict path for every model: the model chosen by its parameters (a
Params: exact GPs, an SvgpParams: SVGPs) or by fit's options, the per-model names (mll,
batchgp.svgp.*) giving the same results, and an option of the other model refused."""

import numpy as np
import pytest
from conftest import assert_close, make_data, make_params
from test_svgp import np_elbo, np_predict, ragged, random_params

import batchgp
from batchgp import ElboResult, MllResult, SvgpParams, SvgpResult


def raises(match, f, *a, **kw):
    with pytest.raises(batchgp.BatchGPError, match=match):
        f(*a, **kw)


def test_evaluate_takes_either_model_by_its_params():
    x, y = make_data(3, 12, 2)
    p = make_params(3, 2)
    exact = batchgp.evaluate(x, y, p, backend="cpu")
    assert type(exact) is MllResult and exact == batchgp.mll(x, y, p, backend="cpu")
    fitted = batchgp.fit(x, y, max_iter=3, backend="cpu")
    assert batchgp.evaluate(x, y, fitted, backend="cpu") == batchgp.mll(x, y, fitted.params, backend="cpu")

    x, y, mask, yvar = ragged()
    sp = random_params()
    sparse = batchgp.evaluate(x, y, sp, mask=mask, yvar=yvar, backend="cpu")
    assert type(sparse) is ElboResult
    assert sparse == batchgp.svgp.elbo(x, y, sp, mask=mask, yvar=yvar, backend="cpu")
    for k in range(3):  # against the independent numpy ELBO of test_svgp
        assert_close(sparse.elbo[k], np_elbo(x, y, sp, k, sparse.jitter[k], mask, yvar), 1e-10, 0, "elbo")


def test_predict_takes_either_model_by_its_params():
    x, y = make_data(3, 12, 2)
    p = make_params(3, 2)
    x_test = np.linspace(0, 1, 7)[:, None].repeat(2, axis=1)
    fitted = batchgp.fit(x, y, max_iter=3, backend="cpu")
    a = batchgp.predict(x, y, fitted, x_test, samples=2, seed=3, backend="cpu")
    assert a == batchgp.predict(x, y, fitted.params, x_test, samples=2, seed=3, backend="cpu")
    assert not np.array_equal(a.mean, batchgp.predict(x, y, p, x_test, backend="cpu").mean)

    sp = random_params()
    xt = np.linspace(0, 1, 9)[:, None].repeat(2, axis=1)
    short = batchgp.predict(sp, xt, full_covariance=True, backend="cpu")
    named = batchgp.predict(None, None, sp, xt, full_covariance=True, backend="cpu")
    keyword = batchgp.predict(params=sp, x_test=xt, full_covariance=True, backend="cpu")
    alias = batchgp.svgp.predict(sp, xt, full_covariance=True, backend="cpu")
    assert short == named == keyword == alias
    for k in range(3):  # against test_svgp's independent numpy posterior
        mean, var = np_predict(sp, k, xt, short.jitter[k])
        assert_close(short.mean[k], mean, 1e-10, 1e-12, "mean")
        assert_close(short.var[k], var, 1e-9, 1e-12, "var")


def test_svgp_samples_follow_first_member():
    sp = random_params()
    xt = np.linspace(0, 1, 5)[:, None].repeat(2, axis=1)
    whole = batchgp.predict(sp, xt, samples=4, seed=9, backend="cpu")
    tail = SvgpParams(sp.z[1:], sp.q_mu[1:], sp.q_sqrt[1:], hyperparameters=_rows(sp.hyperparameters, slice(1, 3)))
    part = batchgp.predict(tail, xt, samples=4, seed=9, first_member=1, backend="cpu")
    assert_close(part.samples, whole.samples[:, 1:], 0, 0, "samples of members 1, 2")
    unkeyed = batchgp.predict(tail, xt, samples=4, seed=9, backend="cpu")
    assert not np.array_equal(unkeyed.samples, whole.samples[:, 1:])


def _rows(p, rows):
    alpha = None if p.alpha is None else p.alpha[rows]
    return batchgp.Params(p.lengthscale[rows], p.outputscale[rows], p.noise[rows], p.mean[rows], alpha, p.kernel)


def test_fit_chooses_the_svgp_by_its_options():
    x, y = make_data(3, 40, 1, shared=True)
    kw = {"max_iter": 30, "backend": "cpu"}
    by_count = batchgp.fit(x, y, num_inducing=6, **kw)
    assert type(by_count) is SvgpResult and by_count.z.shape == (3, 6, 1)
    assert by_count == batchgp.svgp.fit(x, y, num_inducing=6, steps=30, backend="cpu")
    assert by_count == batchgp.fit(x, y, model="svgp", num_inducing=6, optimizer="adam", lr=0.05, **kw)
    z = np.linspace(0, 1, 5)[:, None]
    by_z = batchgp.fit(x, y, z=z, **kw)
    assert by_z == batchgp.svgp.fit(x, y, z=z, steps=30, backend="cpu")
    by_init = batchgp.fit(x, y, init=by_z, max_iter=5, backend="cpu")
    assert by_init == batchgp.svgp.fit(x, y, init=by_z.params, steps=5, backend="cpu")
    # the SVGP's own default: min(N, 64) k-means++ points, adam
    default = batchgp.fit(x, y, model="svgp", **kw)
    assert default.z.shape == (3, 40, 1) and np.all(default.iterations == 30)
    # exact GPs stay exact
    exact = batchgp.fit(x, y, max_iter=30, backend="cpu")
    assert type(exact) is batchgp.FitResult and exact == batchgp.fit(x, y, model="exact", **kw)


def test_svgp_fit_by_chunks_equals_the_whole_batch():
    """first_member reaches the SVGP fit: k-means++ and mini-batches of a chunk's members are the
    whole batch's (what batchgp.dask relies on)."""
    x, y = make_data(4, 50, 1)
    kw = {"num_inducing": 5, "max_iter": 10, "batch_size": 20, "seed": 4, "backend": "cpu"}
    whole = batchgp.fit(x, y, **kw)
    part = batchgp.fit(x[2:], y[2:], first_member=2, **kw)
    assert_close(part.z, whole.z[2:], 0, 0, "z")
    assert_close(part.loss, whole.loss[:, 2:], 0, 0, "loss")
    unkeyed = batchgp.fit(x[2:], y[2:], **kw)
    assert not np.array_equal(unkeyed.loss, whole.loss[:, 2:])


def test_exact_fit_takes_the_learning_rate(run_cli):
    x, y = make_data(3, 15, 2)
    ours = batchgp.fit(x, y, optimizer="adam", lr=0.02, max_iter=20, backend="cpu")
    default = batchgp.fit(x, y, optimizer="adam", max_iter=20, backend="cpu")
    assert not np.array_equal(ours.objective, default.objective)
    args = ["--data", run_cli.data(x, y), "--optimizer", "adam", "--lr", "0.02", "--max-iter", "20"]
    theirs = run_cli.ok("fit", *args)
    assert_close(ours.params.log_lengthscale, theirs["log_lengthscale"], 1e-10, 1e-12, "log_lengthscale")
    assert_close(ours.objective, theirs["objective"], 1e-10, 1e-10, "objective")


def test_an_option_of_the_other_model_is_refused():
    x, y = make_data(3, 20, 1, shared=True)
    p = make_params(3, 1)
    sp = batchgp.fit(x, y, num_inducing=4, max_iter=1, backend="cpu").params
    raises(r"invalid option `restarts`: only model='exact' fits", batchgp.fit, x, y, num_inducing=4, restarts=2)
    raises(r"invalid option `bounds`: only model='exact'", batchgp.fit, x, y, init=sp, bounds=(0.1, 10.0))
    raises(r"invalid option `standardize`", batchgp.fit, x, y, model="svgp", standardize=True)
    raises(r"invalid option `z`: only model='svgp' fits", batchgp.fit, x, y, model="exact", z=x[:3])
    raises(r"invalid option `batch_size`: only model='svgp'", batchgp.fit, x, y, model="exact", batch_size=5)
    raises(r"invalid option `model`: expected exact or svgp, got `gp`", batchgp.fit, x, y, model="gp")
    raises(
        r"invalid option `init`: expected a batchgp.Params \(or a FitResult\), got SvgpParams",
        batchgp.fit,
        x,
        y,
        model="exact",
        init=sp,
    )
    raises(
        r"invalid option `init`: expected a batchgp.svgp.SvgpParams \(or an SvgpResult\), got Params",
        batchgp.fit,
        x,
        y,
        num_inducing=3,
        init=p,
    )
    raises(r"invalid option `fix`: z \(the inducing inputs\) needs model='svgp'", batchgp.fit, x, y, fix="z")
    # evaluate / predict: parameters of neither model; the per-model names take their own only
    raises(
        r"`params`: expected a batchgp.Params \(or a FitResult\) or a batchgp.svgp.SvgpParams",
        batchgp.evaluate,
        x,
        y,
        "rbf",
    )
    raises(r"`params`: expected a batchgp.Params \(or a FitResult\), got SvgpParams", batchgp.mll, x, y, sp)
    raises(r"`params`: expected a batchgp.svgp.SvgpParams", batchgp.svgp.elbo, x, y, p)
    raises(r"`params`: expected a batchgp.svgp.SvgpParams", batchgp.svgp.predict, p, x)
    # an SVGP's prediction takes no data; an exact GP's needs it
    raises(r"invalid option `x`: the svgp model's prediction takes no training data", batchgp.predict, x, y, sp, x)
    raises(r"invalid option `mask`", batchgp.predict, sp, x, mask=np.ones((3, 20)))
    raises(r"missing array `x` or `y`", batchgp.predict, None, None, p, x)
