"""Per-hyperparameter bounds from Python: bounds={name: (low, high)} with per-member and
per-dimension arrays; equal to the CLI's --bounds NAME=LOW,HIGH; a binding bound holds; bad
bounds are rejected with the CLI's message; the single box still works."""

import batchgp
import numpy as np
import pytest
from conftest import assert_close, make_data


def test_bounds_per_kind_equal_the_cli(run_cli):
    x, y = make_data(3, 25, 2, seed=4)
    ours = batchgp.fit(x, y, bounds={"lengthscale": (0.3, np.inf), "noise": (0.02, 5.0)}, backend="cpu")
    theirs = run_cli.ok("fit", "--data", run_cli.data(x, y), "--bounds", "lengthscale=0.3,inf noise=0.02,5")
    assert_close(ours.params.log_lengthscale, theirs["log_lengthscale"], 1e-12, 0)
    assert_close(ours.params.log_noise, theirs["log_noise"], 1e-12, 0)
    assert np.all(ours.lengthscale >= 0.3 * (1 - 1e-12)) and np.all((ours.noise >= 0.02 * (1 - 1e-12)) & (ours.noise <= 5.0 * (1 + 1e-12)))


def test_per_member_and_dimension_bounds_bind_only_where_given():
    x, y = make_data(3, 30, 2, seed=5)
    free = batchgp.fit(x, y, backend="cpu")
    low = np.zeros((3, 2))
    low[2, 1] = 3.0 * free.lengthscale[2, 1]
    r = batchgp.fit(x, y, bounds={"lengthscale": (low, np.full((3, 2), np.inf))}, backend="cpu")
    assert_close(r.lengthscale[2, 1], low[2, 1], 1e-9, 0)
    assert r.objective[2] < free.objective[2]
    assert_close(r.objective[:2], free.objective[:2], 1e-9, 0)
    # Per member (B numbers) on the noise, composed with the single box.
    floor = np.array([0.0, 0.0, 2.0 * free.noise[2]])
    r = batchgp.fit(x, y, bounds={"noise": (floor, np.inf)}, backend="cpu")
    assert_close(r.noise[2], floor[2], 1e-9, 0)
    assert_close(r.objective[:2], free.objective[:2], 1e-9, 0)


def test_bad_bounds_are_rejected(run_cli):
    x, y = make_data(2, 15, 2)
    with pytest.raises(batchgp.BatchGPError) as e:
        batchgp.fit(x, y, bounds={"noise": (2.0, 1.0)})
    assert str(e.value) == run_cli.error("fit", "--data", run_cli.data(x, y), "--bounds", "noise=2,1")
    for bounds, match in [
        ({"width": (1.0, 2.0)}, "unknown hyperparameter `width`"),
        ({"lengthscale": ([1.0, 2.0, 3.0], 5.0)}, "D = 2"),
        ({"noise": 3.0}, r"expected \{name: \(low, high\)\}"),
    ]:
        with pytest.raises(batchgp.BatchGPError, match=match):
            batchgp.fit(x, y, bounds=bounds)
