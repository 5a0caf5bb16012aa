"""Inputs: anything numpy.asarray accepts; f64 arrays reach Rust without a copy; outputs are
numpy arrays."""

import tracemalloc

import numpy as np
import pytest
from conftest import assert_close, make_data, make_params

import batchgp
from batchgp._checks import as_array


def test_f64_and_f32_arrays_pass_through_without_a_copy():
    x = np.random.default_rng(0).uniform(size=(5, 7, 2))
    for a in (x, np.asfortranarray(x), x[:, ::2], x.astype(np.float32)):
        assert as_array(a, "x") is a
    assert as_array([[1, 2]], "x").dtype == np.float64


def test_no_copy_of_x_in_python():
    """numpy reports its allocations to tracemalloc: a copy of x (16 MB) in the Python layer
    would show; the results (B numbers each) are allocated by Rust."""
    x = np.random.default_rng(0).uniform(size=(1000, 200, 10))
    y = np.random.default_rng(1).normal(size=(1000, 200))
    params = batchgp.Params(np.full((1000, 10), 3.0), 1.0, 0.5, 0.0)
    batchgp.mll(x[:2], y[:2], batchgp.Params(params.lengthscale[:2], 1.0, 0.5, 0.0))  # warm-up
    for xx in (x, np.asfortranarray(x)):
        tracemalloc.start()
        try:
            batchgp.mll(xx, y, params, backend="cpu")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < x.nbytes / 20, peak


def test_every_input_form_gives_the_same_numbers():
    x, y = make_data(3, 15, 2)
    p = make_params(3, 2)
    ref = batchgp.mll(x, y, p, backend="cpu")
    forms = [
        (np.asfortranarray(x), np.asfortranarray(y)),
        (x.tolist(), y.tolist()),
        (np.ascontiguousarray(np.swapaxes(np.swapaxes(x, 0, 2).copy(), 0, 2)), y[:, ::-1][:, ::-1]),
        (np.repeat(x, 2, axis=2)[:, :, ::2], y),  # strided
    ]
    for xx, yy in forms:
        r = batchgp.mll(xx, yy, p, backend="cpu")
        assert_close(r.objective, ref.objective, 1e-14, 0)
    # f32 inputs are read as f32 (the same numbers as their f64 conversion)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    r = batchgp.mll(x32, y32, p, backend="cpu")
    assert_close(r.objective, batchgp.mll(x32.astype(np.float64), y32.astype(np.float64), p).objective, 0, 0)
    # integer x, boolean mask
    xi = np.arange(30).reshape(15, 2) % 7
    mask = np.ones((3, 15), dtype=bool)
    mask[0, :3] = False
    a = batchgp.mll(xi, y, p, mask=mask)
    b = batchgp.mll(xi.astype(float), y, p, mask=mask.astype(float))
    assert_close(a.objective, b.objective, 0, 0)


def test_outputs_are_numpy_arrays():
    x, y = make_data(3, 15, 2)
    r = batchgp.fit(x, y)
    for name in ("lengthscale", "outputscale", "noise", "mean", "mll", "log_prior", "objective", "jitter"):
        a = getattr(r, name)
        assert isinstance(a, np.ndarray) and a.dtype == np.float64, name
    assert r.lengthscale.shape == (3, 2) and r.objective.shape == (3,)
    assert r.status.dtype.kind == "i" and r.iterations.dtype.kind == "i"
    assert r.reason.shape == (3,) and r.reason.dtype.kind == "U"
    assert isinstance(r.params, batchgp.Params) and r.kernel == "rbf"


def test_params():
    p = batchgp.Params([[0.5, 2.0]], 1.5, 0.1, -1.0)
    assert p.lengthscale.shape == (1, 2) and p.outputscale.shape == (1,)
    assert_close(p.log_lengthscale, np.log([[0.5, 2.0]]))
    assert_close(p.log_outputscale, np.log([1.5]))
    assert p.log_alpha is None and p.alpha is None
    with pytest.raises(ValueError):
        p.lengthscale[0, 0] = 3.0  # read-only
    with pytest.raises(AttributeError):
        p.log_noise = 0.0
    q = batchgp.Params.from_log(p.log_lengthscale, p.log_outputscale, p.log_noise, p.mean)
    assert_close(q.lengthscale, p.lengthscale, 1e-15)
    rq = batchgp.Params([[1.0]], 1.0, 0.1, 0.0, alpha=2.0, kernel="rq")
    assert_close(rq.log_alpha, [np.log(2.0)])
    assert "kernel='rq'" in repr(rq) and "alpha=" in repr(rq)
    assert p.batch_size == 1 and p.n_dims == 2


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    x, y = make_data(3, 15, 2)
    p = make_params(3, 2)
    ref = batchgp.mll(x, y, p)
    r = batchgp.mll(torch.from_numpy(x), torch.from_numpy(y), p)
    assert_close(r.objective, ref.objective, 0, 0)
    r32 = batchgp.mll(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32, requires_grad=True), p)
    # float32 tensors in: float32 tensors out, the f64 run's numbers rounded.
    assert r32.objective.dtype == torch.float32
    ref32 = batchgp.mll(x.astype(np.float32), y.astype(np.float32), p).objective.astype(np.float32)
    assert_close(r32.objective, ref32, 0, 0)
    fit = batchgp.fit(
        torch.from_numpy(x), torch.from_numpy(y), priors={"noise": batchgp.Gamma(torch.tensor(2.0), 20.0)}
    )
    assert fit.lengthscale.shape == (3, 2)
