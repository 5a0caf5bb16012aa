"""The Pyro forum's "Batching Gaussian Processes" request, written as its author wanted it:

    x (264, 3) shared by four GPs, y (4, 264); a Gamma prior on each lengthscale dimension,
    Gamma([2, 2, 2], [0.0075, 0.075, 0.075]); Uniform(10, 150) on the variance (outputscale);
    the four GPs fitted at once, each with its own hyperparameters.

The data are draws from four GP priors with different hyperparameters (the demo's, see
src/demo.rs), the inputs' scales tenfold apart as in the original ([0, 500] x [0, 50]^2).
"""

import numpy as np
import pytest
from conftest import assert_close

import batchgp

TRUTH = batchgp.Params(
    lengthscale=[[250.0, 25.0, 25.0], [120.0, 12.0, 35.0], [60.0, 40.0, 10.0], [180.0, 8.0, 20.0]],
    outputscale=[60.0, 30.0, 100.0, 20.0],
    noise=[1.0, 0.5, 2.0, 0.2],
    mean=[0.0, 5.0, -10.0, 2.0],
)

PRIORS = {
    "lengthscale": batchgp.Gamma([2.0, 2.0, 2.0], [0.0075, 0.075, 0.075]),
    "outputscale": batchgp.Uniform(10.0, 150.0),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    x = rng.uniform(0, 1, (264, 3)) * [500.0, 50.0, 50.0]
    y = batchgp.sample_prior(x, TRUTH, samples=1, seed=2024, noise=True)[0]
    assert x.shape == (264, 3) and y.shape == (4, 264)
    return x, y


def test_the_request_as_asked(data):
    x, y = data
    r = batchgp.fit(x, y, priors=PRIORS)
    assert r.lengthscale.shape == (4, 3)
    assert np.all(r.status <= 1), r.summary()
    assert np.all((r.outputscale > 10.0) & (r.outputscale < 150.0))  # the uniform prior is a hard bound
    # MAP: the objective is mll + log prior, the prior terms are those of the request
    at_fit = batchgp.mll(x, y, r.params, priors=PRIORS)
    assert_close(at_fit.objective, r.objective, 1e-10, 1e-8)
    shape, rate = np.array([2.0, 2.0, 2.0]), np.array([0.0075, 0.075, 0.075])
    from math import lgamma

    log_gamma = shape * np.log(rate) - np.array([lgamma(a) for a in shape]) + (shape - 1) * np.log(r.lengthscale)
    log_gamma -= rate * r.lengthscale
    assert_close(r.log_prior, log_gamma.sum(axis=1) - np.log(140.0), 1e-10, 1e-10)
    # a stationary point of the objective in every free coordinate
    grads = np.hstack([at_fit.grad_log_lengthscale, at_fit.grad_log_noise[:, None], at_fit.grad_mean[:, None]])
    assert np.max(np.abs(grads)) < 1e-3
    # it explains the data: the posterior mean at the inputs is close to y
    p = batchgp.predict(x, y, r, x)
    r2 = 1 - np.var(y - p.mean, axis=1) / np.var(y, axis=1)
    assert np.all(r2 > 0.9), r2
    # better than where it started
    start = batchgp.fit(x, y, priors=PRIORS, max_iter=0)
    assert np.all(r.objective > start.objective)
    assert "lengthscale[2]" in r.summary() and "outputscale" in r.summary()


def test_as_the_cli_fits_it(data, run_cli):
    """The same request through docs/design.md's priors file gives the same fit."""
    x, y = data
    toml = run_cli.path("pyro") + ".toml"
    with open(toml, "w") as f:
        f.write(
            "[lengthscale]\ngamma = { concentration = [2.0, 2.0, 2.0], rate = [0.0075, 0.075, 0.075] }\n"
            "[outputscale]\nuniform = { low = 10.0, high = 150.0 }\n"
        )
    theirs = run_cli.ok("fit", "--data", run_cli.data(x, y), "--priors", toml)
    ours = batchgp.fit(x, y, priors=PRIORS, backend="cpu")
    assert_close(ours.params.log_lengthscale, theirs["log_lengthscale"], 1e-9, 1e-9)
    assert_close(ours.objective, theirs["objective"], 1e-9, 1e-9)


def test_priors_per_gp_and_dimension(data):
    """Rates per GP and dimension (B lists of D numbers), as in batchgp's demo."""
    x, y = data
    rates = [[0.0075, 0.075, 0.075]] + [
        list(2.0 / (f * TRUTH.lengthscale[b])) for b, f in [(1, 1.2), (2, 0.85), (3, 1.1)]
    ]
    priors = {"lengthscale": batchgp.Gamma(2.0, rates), "outputscale": batchgp.Uniform(10.0, 150.0)}
    r = batchgp.fit(x, y, priors=priors)
    assert np.all(r.status <= 1)
    # GP 0 has the shared request's prior: the same fit for it
    shared = batchgp.fit(x, y, priors=PRIORS)
    assert_close(r.lengthscale[0], shared.lengthscale[0], 1e-8, 0)
    assert not np.allclose(r.lengthscale[1:], shared.lengthscale[1:], rtol=1e-6)
