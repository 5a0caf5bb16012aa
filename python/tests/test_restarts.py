"""Restarts through the binding (issue 23): the default follows the library's DEFAULT_RESTARTS,
the result says how many starts reached the kept optimum, and summary() warns where only one did."""

from __future__ import annotations

import numpy as np

import batchgp
from batchgp import _batchgp as native
from batchgp.results import FitResult


def teachers(b: int = 6, n: int = 300, seed: int = 101):
    """GPyTorch 101's teachers (rbf, lengthscale 0.01, noise sd 0.1) at shared inputs on [0, 1]:
    a likelihood with a noise-explained local maximum beside the teacher's."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 1, n))
    k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / 0.01) ** 2) + 1e-8 * np.eye(n)
    f = np.linalg.cholesky(k) @ rng.standard_normal((n, b))
    return x[:, None], (f + 0.1 * rng.standard_normal((n, b))).T


def student_init(b: int) -> batchgp.Params:
    return batchgp.Params(np.ones((b, 1)), np.ones(b), np.ones(b), np.zeros(b))


def test_the_default_restarts_follow_the_library():
    x, y = teachers()
    r = batchgp.fit(x, y, init=student_init(len(y)), fix="outputscale")
    assert native.DEFAULT_RESTARTS == 3
    assert r.starts == native.DEFAULT_RESTARTS + 1
    assert np.all((r.reached_best >= 1) & (r.reached_best <= r.starts))
    explicit = batchgp.fit(x, y, init=student_init(len(y)), fix="outputscale", restarts=native.DEFAULT_RESTARTS)
    assert r == explicit


def test_reached_best_matches_the_engine_outcome_and_the_summary_warns_for_lone_starts():
    x, y = teachers()
    r = batchgp.fit(x, y, init=student_init(len(y)), fix="outputscale")
    lone = set(np.flatnonzero(r.reached_best == 1))
    # The engine's own words (FitResult::describe) carry the same warning, per member.
    assert lone == {m for m, o in enumerate(r.outcome) if "only 1 of" in o}
    text = r.summary()
    assert ("warning:" in text.splitlines()[-1]) == bool(lone)
    # Forced both ways on the same fit: one lone member warns and is named; none, no warning.
    arrays = r._dict()
    arrays["reached_best"] = np.full(len(y), 2)
    assert "warning" not in FitResult(arrays).summary()
    arrays["reached_best"] = np.array([2, 1, 4, 2, 2, 3])
    last = FitResult(arrays).summary().splitlines()[-1]
    assert last.startswith("warning: 1 member(s) (1): only 1 of 4 starts")


def test_one_start_never_warns_and_reaches_itself():
    x, y = teachers()
    r = batchgp.fit(x, y, init=student_init(len(y)), fix="outputscale", restarts=0)
    assert r.starts == 1
    assert np.all(r.reached_best == 1)
    assert "warning" not in r.summary()
    # Some student stops in the noise-explained maximum without restarts, so the default's
    # restarts are what the tests above measure.
    assert np.any(np.abs(r.lengthscale[:, 0] / 0.01 - 1) > 0.1)
