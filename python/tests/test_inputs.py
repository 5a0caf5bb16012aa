"""What a user can pass: numpy masked arrays keep their mask (masked entries of x, y or yvar are
masked points, combined with mask=; where a mask cannot be honoured the call is refused), and
one rule for numbers: numeric dtypes only (no object or string arrays, booleans only for a
mask), and an integer option takes an int, not True."""

import numpy as np
import pytest
from conftest import make_data, make_params

import batchgp

GARBAGE = 1e3  # what a masked entry holds: fitting it would change every number


def message(call) -> str:
    with pytest.raises(batchgp.BatchGPError) as e:
        call()
    return str(e.value)


def masked_case(shared=False):
    """Data with garbage at some points, those points as an explicit mask, and the same data as
    masked arrays of y, yvar and x (each masking some of the points)."""
    x, y = make_data(3, 14, 2, shared=shared)
    x, y = x.copy(), y.copy()
    yvar = np.full((3, 14), 0.01)
    hide_y = np.zeros((3, 14), bool)
    hide_y[0, [1, 5]] = hide_y[2, 0] = True
    hide_v = np.zeros((3, 14), bool)
    hide_v[1, 3] = True
    y[hide_y] = GARBAGE
    yvar[hide_v] = GARBAGE
    mask = (~(hide_y | hide_v)).astype(float)
    return x, y, yvar, mask, np.ma.array(y, mask=hide_y), np.ma.array(yvar, mask=hide_v)


def test_masked_y_and_yvar_are_masked_points():
    x, y, yvar, mask, my, mv = masked_case()
    p = make_params(3, 2)
    want = batchgp.mll(x, y, p, mask=mask, yvar=yvar, backend="cpu")
    got = batchgp.mll(x, my, p, yvar=mv, backend="cpu")
    assert got == want
    assert not np.array_equal(batchgp.mll(x, y, p, yvar=yvar, backend="cpu").mll, want.mll)  # garbage counts
    assert batchgp.evaluate(x, my, p, yvar=mv, backend="cpu") == want
    xt = np.linspace(0, 1, 5)[:, None].repeat(2, axis=1)
    assert batchgp.predict(x, my, p, xt, yvar=mv, backend="cpu") == batchgp.predict(
        x, y, p, xt, mask=mask, yvar=yvar, backend="cpu"
    )
    fit = batchgp.fit(x, my, yvar=mv, max_iter=5, backend="cpu")
    assert fit == batchgp.fit(x, y, mask=mask, yvar=yvar, max_iter=5, backend="cpu")


def test_masked_entries_combine_with_mask():
    x, y, yvar, mask, my, mv = masked_case()
    p = make_params(3, 2)
    extra = np.ones((3, 14))
    extra[1, [0, 9]] = 0
    y2 = y.copy()
    y2[1, [0, 9]] = np.nan  # padding under mask= may hold anything
    want = batchgp.mll(x, y, p, mask=mask * extra, yvar=yvar, backend="cpu")
    assert batchgp.mll(x, np.ma.array(y2, mask=my.mask), p, mask=extra, yvar=mv, backend="cpu") == want
    bool_extra = extra.astype(bool)
    assert batchgp.mll(x, np.ma.array(y2, mask=my.mask), p, mask=bool_extra, yvar=mv, backend="cpu") == want


def test_masked_x_per_member_and_shared():
    p = make_params(3, 2)
    x, y = make_data(3, 14, 2)
    x = x.copy()
    hide = np.zeros(x.shape, bool)
    hide[1, 4, 0] = hide[2, 7, 1] = True  # one coordinate masks the whole point
    x[hide] = GARBAGE
    mask = np.ones((3, 14))
    mask[1, 4] = mask[2, 7] = 0
    want = batchgp.mll(x, y, p, mask=mask, backend="cpu")
    assert batchgp.mll(np.ma.array(x, mask=hide), y, p, backend="cpu") == want

    xs, ys = make_data(3, 14, 2, shared=True)
    xs = xs.copy()
    xs[6, 1] = np.nan
    mask = np.ones((3, 14))
    mask[:, 6] = 0  # a shared point is every member's
    want = batchgp.mll(np.broadcast_to(xs, (3, 14, 2)), ys, p, mask=mask, backend="cpu")
    assert batchgp.mll(np.ma.masked_invalid(xs), ys, p, backend="cpu") == want


def test_masked_data_of_an_svgp():
    x, y, yvar, mask, my, mv = masked_case(shared=True)
    fit = batchgp.fit(x, my, yvar=mv, num_inducing=4, max_iter=5, backend="cpu")
    assert fit == batchgp.fit(x, y, mask=mask, yvar=yvar, num_inducing=4, max_iter=5, backend="cpu")
    want = batchgp.evaluate(x, y, fit.params, mask=mask, yvar=yvar, backend="cpu")
    assert batchgp.svgp.elbo(x, my, fit.params, yvar=mv, backend="cpu") == want


def test_masked_data_through_dask():
    da = pytest.importorskip("dask.array")
    import batchgp.dask

    x, y, yvar, mask, my, mv = masked_case(shared=True)
    want = batchgp.fit(x, y, mask=mask, yvar=yvar, max_iter=10, backend="cpu")
    assert batchgp.dask.fit(x, my, yvar=mv, merge_below=None, max_iter=10, backend="cpu") == want
    chunked = da.ma.masked_array(da.from_array(my.data, chunks=(2, 14)), mask=da.from_array(my.mask, chunks=(2, 14)))
    assert batchgp.dask.fit(x, chunked, yvar=mv, merge_below=None, max_iter=10, backend="cpu") == want


def test_a_masked_array_without_masked_entries_is_its_data():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    want = batchgp.mll(x, y, p, backend="cpu")
    assert batchgp.mll(np.ma.array(x), np.ma.masked_invalid(y), p, backend="cpu") == want
    assert batchgp.predict(x, y, p, np.ma.array(x[0]), backend="cpu") == batchgp.predict(x, y, p, x[0], backend="cpu")


def test_a_mask_that_cannot_be_honoured_is_refused():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    one = np.zeros((10, 2), bool)
    one[3, 0] = True
    cases = {
        "x_test": lambda: batchgp.predict(x, y, p, np.ma.array(x[0], mask=one)),
        "lengthscale": lambda: batchgp.Params(np.ma.array(p.lengthscale, mask=[[1, 0]] * 3), 1.0, 0.1, 0.0),
        "mask": lambda: batchgp.mll(x, y, p, mask=np.ma.array(np.ones((3, 10)), mask=np.eye(3, 10, dtype=bool))),
        "gamma concentration": lambda: batchgp.Gamma(np.ma.array([2.0, 2.0], mask=[0, 1]), 1.0),
        "x": lambda: batchgp.sample_prior(np.ma.array(x[0], mask=one), p),
    }
    for name, call in cases.items():
        text = message(call)
        assert text.startswith(f"array `{name}` is a masked array with masked entries"), text
    # masked entries of a shape that names no training point
    y1 = np.ma.array(y[0], mask=np.eye(1, 10, dtype=bool)[0])
    assert message(lambda: batchgp.mll(x, y1, p)) == "array `y` has shape [10], expected (B, N)"
    bad_x = np.ma.array(np.zeros((3, 9, 2)), mask=np.zeros((3, 9, 2), bool))
    bad_x.mask[0, 0, 0] = True
    assert message(lambda: batchgp.fit(bad_x, y)).startswith("array `x` is masked with shape [3, 9, 2], expected")


def test_integer_options_refuse_bools():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    calls = {
        "max_iter": lambda: batchgp.fit(x, y, max_iter=True),
        "restarts": lambda: batchgp.fit(x, y, restarts=True),
        "seed": lambda: batchgp.fit(x, y, seed=False),
        "samples": lambda: batchgp.predict(x, y, p, x[0], samples=True),
        "num_inducing": lambda: batchgp.fit(x, y, num_inducing=True),
        "steps": lambda: batchgp.svgp.fit(x, y, steps=np.True_),
        "first_member": lambda: batchgp.fit(x, y, first_member=True),
    }
    for name, call in calls.items():
        assert message(call).startswith(f"invalid option `{name}`: expected an integer, got "), name
    assert (
        message(lambda: batchgp.fit(x, y, num_inducing=3, lr=True))
        == "invalid option `lr`: expected a number, got True"
    )
    assert message(lambda: batchgp.fit(x, y, bounds=(True, 2.0))).startswith(
        "invalid option `bounds`: expected (low, high)"
    )
    # numpy integers are integers
    r = batchgp.fit(x, y, max_iter=np.int64(3), restarts=np.int32(0), backend="cpu")
    assert r == batchgp.fit(x, y, max_iter=3, restarts=0, backend="cpu")


def test_arrays_must_hold_numbers():
    x, y = make_data(3, 10, 2)
    p = make_params(3, 2)
    strings = y.astype(str).astype(object)  # numeric strings: refused, not parsed
    assert message(lambda: batchgp.mll(x, strings, p)).startswith(
        "array `y` is an array of Python objects (dtype object), not of numbers"
    )
    floats = y.astype(object)  # even Python floats in an object array
    assert message(lambda: batchgp.fit(floats, y)).startswith("array `x` is an array of Python objects")
    assert message(lambda: batchgp.fit(x, floats)).startswith("array `y` is an array of Python objects")
    assert message(lambda: batchgp.mll(x, y.astype(str), p)) == "array `y` is not an array of real numbers (dtype <U32)"
    assert (
        message(lambda: batchgp.mll(x, y > 0, p))
        == "array `y` holds booleans, not numbers (only a mask may be boolean)"
    )
    assert message(lambda: batchgp.mll(x, y, p, yvar=np.ones((3, 10), bool))).startswith("array `yvar` holds booleans")
    assert message(lambda: batchgp.Params(np.ones((3, 2), bool), 1.0, 0.1, 0.0)).startswith("array `lengthscale` holds")
    # what stays accepted: integers, f16, and a boolean mask
    xi = (np.arange(60).reshape(3, 10, 2) % 7).astype(np.int32)
    assert batchgp.mll(xi, y, p, backend="cpu") == batchgp.mll(xi.astype(float), y, p, backend="cpu")
    y16 = y.astype(np.float16)
    assert batchgp.mll(x, y16, p, backend="cpu") == batchgp.mll(x, y16.astype(float), p, backend="cpu")
    m = np.ones((3, 10), bool)
    m[0, 0] = False
    assert batchgp.mll(x, y, p, mask=m, backend="cpu") == batchgp.mll(x, y, p, mask=m.astype(float), backend="cpu")
