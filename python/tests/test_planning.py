"""Sizes that options imply are planned before anything is allocated (issue 21, points 3 to 5
and 7): restarts, prior samples, inducing points and steps of loss history that cannot fit are
refused with BatchGPError naming the bytes, never an abort of the interpreter; `standardize`
(point 14) is refused with its reason; a fit that ends on a Uniform prior's bound says so in its
outcome (point 18)."""

import re

import numpy as np
import pytest
from conftest import make_data, make_params

import batchgp


def refused(option, f, *a, **kw):
    with pytest.raises(batchgp.BatchGPError, match=r"needs [0-9.]+ [KMGTP]iB of memory, more than") as e:
        f(*a, **kw)
    assert option in str(e.value), str(e.value)


@pytest.mark.parametrize("restarts", [10**12, 10**9])
def test_restarts_beyond_memory_are_refused(restarts):
    x, y = make_data(3, 20, 1)
    refused(f"restarts = {restarts}", batchgp.fit, x, y, restarts=restarts, backend="cpu")


def test_prior_samples_beyond_memory_are_refused():
    x, _ = make_data(3, 30, 2, shared=True)
    refused("samples = 10000000000", batchgp.sample_prior, x, make_params(3, 2), samples=10**10)
    assert batchgp.sample_prior(x, make_params(3, 2), samples=2).shape == (2, 3, 30)


@pytest.mark.parametrize("m", [10**6, 10**5])
def test_inducing_points_beyond_memory_are_refused(m):
    x, y = make_data(2, 50, 1)
    refused(f"M = {m}", batchgp.fit, x, y, num_inducing=m, max_iter=2)
    refused(f"M = {m}", batchgp.svgp.fit, x, y, num_inducing=m, steps=2)


def test_loss_history_beyond_memory_is_refused():
    x, y = make_data(20_000, 4, 1, shared=True)
    refused("10000000 steps", batchgp.svgp.fit, x, y, num_inducing=2, steps=10**7)


def test_standardize_is_refused_with_its_reason():
    x, y = make_data(2, 20, 1)
    with pytest.raises(batchgp.BatchGPError, match="standardize was removed: it did nothing"):
        batchgp.fit(x, y, standardize=True, max_iter=3)
    batchgp.fit(x, y, standardize=False, max_iter=3)


def test_a_fit_on_a_uniform_bound_says_so():
    # Amplitude-1 data against Uniform(10, 150): the outputscale ends on the bound 10.
    x, y = make_data(2, 40, 1)
    fit = batchgp.fit(x, y, priors={"outputscale": batchgp.Uniform(10.0, 150.0)})
    assert np.allclose(fit.outputscale, 10.0, rtol=1e-5)
    for m in range(2):
        assert "outputscale at its uniform prior's bound 10" in fit.outcome[m], fit.outcome[m]
    assert re.search(r"outputscale at its uniform prior's bound 10", fit.summary())
    # Data whose scale agrees with the prior: nothing is flagged.
    ok = batchgp.fit(x, 5 * y, priors={"outputscale": batchgp.Uniform(1.0, 150.0)})
    assert all("bound" not in o for o in ok.outcome), list(ok.outcome)
