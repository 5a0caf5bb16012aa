"""Rejected input: batchgp.BatchGPError (a ValueError) with the CLI's one-line message, for
every class of rejection, and never a crash (no other exception, no abort) on hostile input."""

import numpy as np
import pytest
from conftest import make_data, make_params

import batchgp


def message(call) -> str:
    with pytest.raises(batchgp.BatchGPError) as e:
        call()
    assert isinstance(e.value, ValueError)
    text = str(e.value)
    assert "\n" not in text and text
    return text


def test_the_error_type():
    assert issubclass(batchgp.BatchGPError, ValueError)
    assert batchgp.BatchGPError.__module__ == "batchgp"


# Each case: a name, the Python call's arguments (x, y, params and keyword options), and what
# the CLI's files hold for the same request. Both must give the same message.
def cases():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    nan_y = y.copy()
    nan_y[1, 3] = np.nan
    nan_x = x.copy()
    nan_x[2, 4, 1] = np.inf
    bad_mask = np.ones((3, 10))
    bad_mask[0, 7] = 2
    zero_ls = batchgp.Params(np.where(np.arange(2) == 1, 0.0, p.lengthscale), p.outputscale, p.noise, p.mean)
    return [
        # (name, x, y, params, mll options, CLI data extras)
        ("shape of x vs y", x, y[:, :5], p, {}),
        ("y not 2-d", x, y[0], p, {}),
        ("x not 2-d or 3-d", x[None], y, p, {}),
        ("NaN in y", x, nan_y, p, {}),
        ("inf in x", nan_x, y, p, {}),
        ("mask neither 0 nor 1", x, y, p, {"mask": bad_mask}),
        ("mask of the wrong shape", x, y, p, {"mask": np.ones((3, 9))}),
        ("negative yvar", x, y, p, {"yvar": -np.ones((3, 10))}),
        ("yvar of the wrong shape", x, y, p, {"yvar": np.ones((10,))}),
        ("lengthscale 0", x, y, zero_ls, {}),
        ("invalid prior parameter", x, y, p, {"priors": {"noise": batchgp.Gamma(2.0, -1.0)}}),
        ("prior list of the wrong length", x, y, p, {"priors": {"lengthscale": batchgp.Gamma([2.0] * 3, 1.0)}}),
        ("prior per member of the wrong length", x, y, p, {"priors": {"mean": batchgp.Normal([0.0] * 2, 1.0)}}),
        ("nested prior on a scalar", x, y, p, {"priors": {"noise": batchgp.HalfCauchy([[1.0], [1.0], [1.0]])}}),
        ("uniform low >= high", x, y, p, {"priors": {"outputscale": batchgp.Uniform(5.0, 1.0)}}),
    ]


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_mll_message_is_the_clis(run_cli, case):
    _name, x, y, params, options = case
    ours = message(lambda: batchgp.mll(x, y, params, backend="cpu", **options))
    args = ["--data", run_cli.data(x, y, options.get("mask"), options.get("yvar")), "--params", run_cli.params(params)]
    if "priors" in options:
        args += ["--priors", run_cli.priors(options["priors"])]
    assert ours == run_cli.error("mll", *args)


def test_fit_and_predict_messages_are_the_clis(run_cli):
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    data = run_cli.data(x, y)
    assert message(lambda: batchgp.fit(x, y, bounds=(2.0, 1.0))) == run_cli.error(
        "fit", "--data", data, "--bounds", "2,1"
    )
    assert message(lambda: batchgp.fit(x, y, fix="noize")) == run_cli.error("fit", "--data", data, "--fix", "noize")
    assert message(lambda: batchgp.fit(x, y, fix="alpha")) == run_cli.error("fit", "--data", data, "--fix", "alpha")
    for x_test in (np.ones((4, 3)), np.full((4, 2), np.inf), np.ones((2, 4, 2))):
        ours = message(lambda x_test=x_test: batchgp.predict(x, y, p, x_test))
        assert ours == run_cli.error(
            "predict", "--data", data, "--params", run_cli.params(p), "--test", run_cli.test_points(x_test)
        )
    if "cuda" not in batchgp.info()["backends"]:
        ours = message(lambda: batchgp.mll(x, y, p, backend="cuda"))
        assert ours.startswith("backend `cuda` is not available")
        assert ours == run_cli.error("mll", "--data", data, "--params", run_cli.params(p), "--backend", "cuda")


def test_option_messages():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    expect = {
        "invalid option `kernel`: expected rbf, matern12, matern32, matern52 or rq, got `matern`": lambda: batchgp.fit(
            x, y, kernel="matern"
        ),
        "invalid option `kernel`: `rq` contradicts the params' kernel `rbf`": lambda: batchgp.mll(x, y, p, kernel="rq"),
        "invalid option `backend`: expected auto, cpu or cuda, got `gpu`": lambda: batchgp.mll(x, y, p, backend="gpu"),
        "invalid option `precision`: expected f64 or f32, got `f16`": lambda: batchgp.mll(x, y, p, precision="f16"),
        "invalid option `optimizer`: expected lbfgs or adam, got `sgd`": lambda: batchgp.fit(x, y, optimizer="sgd"),
        "invalid option `bounds`: expected (low, high), got 3": lambda: batchgp.fit(x, y, bounds=3),
        "invalid option `max_iter`: must be >= 0, got -1": lambda: batchgp.fit(x, y, max_iter=-1),
        "invalid option `max_iter`: expected an integer, got 1.5": lambda: batchgp.fit(x, y, max_iter=1.5),
        "invalid option `restarts`: must be >= 0, got -2": lambda: batchgp.fit(x, y, restarts=-2),
        "invalid option `seed`: must be >= 0, got -1": lambda: batchgp.fit(x, y, seed=-1),
        "invalid option `init`: holds rbf hyperparameters for a fit of the matern52 kernel": lambda: batchgp.fit(
            x, y, init=p, kernel="matern52"
        ),
        "invalid option `init`: expected a batchgp.Params (or a FitResult), got dict": lambda: batchgp.fit(
            x, y, init={}
        ),
        "invalid option `params`: expected a batchgp.Params (or a FitResult), got NoneType": lambda: batchgp.mll(
            x, y, None
        ),
        "invalid option `samples`: must be >= 1": lambda: batchgp.sample_prior(x[0], p, samples=0),
        "invalid option `n`: must be >= 1, got 0": lambda: batchgp.set_num_threads(0),
        "invalid prior on lengthscales: unknown hyperparameter (expected lengthscale, outputscale, noise, mean or alpha)": lambda: (
            batchgp.fit(x, y, priors={"lengthscales": batchgp.Gamma(2.0, 1.0)})
        ),
        "invalid prior on alpha: the rbf kernel has no alpha": lambda: batchgp.fit(
            x, y, priors={"alpha": batchgp.Gamma(2.0, 1.0)}
        ),
        "invalid prior on noise: expected a batchgp prior (Gamma, LogNormal, Normal, HalfCauchy or Uniform), got int": lambda: (
            batchgp.fit(x, y, priors={"noise": 3})
        ),
        "missing array `alpha` (the rq kernel needs it)": lambda: batchgp.Params(
            p.lengthscale, 1.0, 0.1, 0.0, kernel="rq"
        ),
        "invalid option `alpha`: given for the rbf kernel, which has none": lambda: batchgp.Params(
            p.lengthscale, 1.0, 0.1, 0.0, alpha=1.0
        ),
        "array `lengthscale` has shape [3], expected (B, D)": lambda: batchgp.Params(np.ones(3), 1.0, 0.1, 0.0),
        # the CLI names the file's log_lengthscale here
        "array `lengthscale` has shape [2, 2], expected (3, 2)": lambda: batchgp.mll(x, y, make_params(2, 2)),
        "array `lengthscale` has shape [3, 3], expected (3, 2)": lambda: batchgp.mll(x, y, make_params(3, 3)),
        "array `outputscale` has shape [2], expected (3,)": lambda: batchgp.Params(p.lengthscale, [1.0, 2.0], 0.1, 0.0),
        "array `x` is not an array of real numbers (dtype <U3)": lambda: batchgp.mll("abc", y, p),
        "array `y` is not an array of real numbers (dtype complex128)": lambda: batchgp.mll(x, y + 1j, p),
        "invalid option `return_cov`: at most one of return_std and return_cov may be true": lambda: (
            batchgp.BatchGP().fit(x, y).predict(x[0], return_std=True, return_cov=True)
        ),
        "this BatchGP is not fitted yet: call fit(x, y) first": lambda: batchgp.BatchGP().predict(x[0]),
    }
    for text, call in expect.items():
        assert message(call) == text


HOSTILE = [
    ("empty batch", np.zeros((0, 2)), np.zeros((0, 5))),
    ("no points", np.zeros((0, 2)), np.zeros((2, 0))),
    ("no dimensions", np.zeros((2, 5, 0)), np.zeros((2, 5))),
    ("ragged lists", [[1.0, 2.0], [3.0]], [[1.0, 2.0]]),
    ("objects", np.array([object(), object()]), np.zeros((1, 2))),
    ("a string", "x", "y"),
    ("None", None, None),
    ("4-d x", np.zeros((1, 2, 3, 1)), np.zeros((2, 3))),
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c[0])
def test_hostile_input_is_rejected_not_crashed(case):
    _, x, y = case
    for call in (
        lambda: batchgp.fit(x, y),
        lambda: batchgp.mll(x, y, make_params(2, 2)),
        lambda: batchgp.predict(x, y, make_params(2, 2), np.zeros((3, 2))),
    ):
        message(call)


def test_numerical_trouble_is_a_status_not_an_error():
    x, y = make_data(3, 10, 2)
    # a member with no observed point is empty (status 4), the others are fitted
    mask = np.ones((3, 10))
    mask[1] = 0
    r = batchgp.fit(x, y, mask=mask)
    assert list(r.status) == [0, 4, 0] or (r.status[1] == 4 and set(r.status[[0, 2]]) <= {0, 1})
    # infinite hyperparameters fail that member only
    p = make_params(3, 2)
    s = p.outputscale.copy()
    s[2] = np.inf
    m = batchgp.mll(x, y, batchgp.Params(p.lengthscale, s, p.noise, p.mean))
    assert m.status[2] == 3 and np.isnan(m.mll[2]) and np.all(np.isfinite(m.mll[:2]))
    # constant y: degenerate, flagged
    r = batchgp.fit(x, np.ones((3, 10)))
    assert np.all(r.status == 5)
