"""Torch tensors in and out of batchgp.fit, evaluate / mll, predict and sample_prior: the numbers
of the numpy call to the bit, tensors of the right dtype and device out, numpy's typed errors for
the dtypes numpy refuses, no gradient through, and a BoTorch-style workflow (train_X / train_Y
tensors straight into batchgp.fit, then predict) against GPyTorch's posterior."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_data

torch = pytest.importorskip("torch")

import batchgp
from batchgp import _tensors

F64 = torch.float64


def t(a, **kw):
    return torch.tensor(np.asarray(a), **kw)


def numeric_fields(r):
    """Name -> value of every numeric array of a result."""
    out = {}
    for k in r._fields + r._optional:
        v = getattr(r, k)
        numeric = v is not None and not isinstance(v, (str, int)) and getattr(v, "dtype", None) is not None
        if numeric and not (isinstance(v, np.ndarray) and v.dtype.kind in "US"):
            out[k] = v
    return out


def assert_same(ours, numpy_result, dtype=F64, device="cpu"):
    """``ours`` holds tensors (floats of ``dtype``, ints int64, on ``device``, no grad) whose values
    equal ``numpy_result``'s arrays bit for bit (NaN where NaN); the rest is equal and numpy."""
    assert type(ours) is type(numpy_result)
    theirs = numeric_fields(numpy_result)
    mine = numeric_fields(ours)
    assert mine.keys() == theirs.keys()
    for k, a in theirs.items():
        v = mine[k]
        assert isinstance(v, torch.Tensor), (k, type(v))
        assert v.device == torch.device(device), (k, v.device)
        assert v.dtype == (dtype if a.dtype.kind == "f" else torch.int64), (k, v.dtype)
        assert not v.requires_grad and v.grad_fn is None, k
        assert tuple(v.shape) == a.shape, k
        expected = a.astype(np.float32) if dtype == torch.float32 and a.dtype.kind == "f" else a
        assert np.array_equal(v.cpu().numpy(), expected, equal_nan=a.dtype.kind == "f"), k
    for k in ("reason", "outcome"):
        if hasattr(numpy_result, k):
            assert isinstance(getattr(ours, k), np.ndarray)
            assert np.array_equal(getattr(ours, k), getattr(numpy_result, k)), k
    for k in ("kernel", "starts", "rounds"):
        if hasattr(numpy_result, k):
            assert getattr(ours, k) == getattr(numpy_result, k), k


def test_fit_mll_predict_with_tensors_equal_numpy_to_the_bit():
    x, y = make_data(3, 25, 2)
    mask = np.ones((3, 25))
    mask[2, 18:] = 0
    yvar = np.full((3, 25), 1e-3)
    xt = np.random.default_rng(4).uniform(0, 1, (9, 2))
    ref = batchgp.fit(x, y, mask=mask, yvar=yvar, kernel="rq", restarts=1, max_iter=60)
    # requires_grad, a transposed (non-contiguous) y, an int mask: all read as numpy reads them.
    yt = t(y.T.copy(), dtype=F64).T.requires_grad_()
    r = batchgp.fit(t(x, requires_grad=True), yt, mask=t(mask, dtype=torch.int64), yvar=t(yvar),
                    kernel="rq", restarts=1, max_iter=60)
    assert_same(r, ref)
    assert isinstance(r.params, batchgp.Params) and np.array_equal(r.params.lengthscale, ref.params.lengthscale)
    # A CPU f64 output is the numpy array's memory (no copy).
    assert r.lengthscale.data_ptr() == r._host.lengthscale.ctypes.data

    m_ref = batchgp.mll(x, y, ref, mask=mask, yvar=yvar)
    assert_same(batchgp.mll(t(x), t(y), r.params, mask=t(mask), yvar=t(yvar)), m_ref)
    assert_same(batchgp.evaluate(t(x), y, ref.params, mask=mask, yvar=yvar), m_ref)  # mixed

    p_ref = batchgp.predict(x, y, ref, xt, mask=mask, yvar=yvar, samples=3, seed=5, full_covariance=True)
    p = batchgp.predict(t(x), t(y), r.params, t(xt), mask=t(mask), yvar=t(yvar), samples=3, seed=5,
                        full_covariance=True)
    assert_same(p, p_ref)
    assert_same(batchgp.predict(x, y, ref, t(xt), mask=mask, yvar=yvar, samples=3, seed=5, full_covariance=True),
                p_ref)  # only x_test a tensor
    s_ref = batchgp.sample_prior(x, ref.params, samples=2, seed=1)
    s = batchgp.sample_prior(t(x), ref.params, samples=2, seed=1)
    assert isinstance(s, torch.Tensor) and s.dtype == F64 and np.array_equal(s.numpy(), s_ref)
    # Params built from tensors hold numpy arrays; numpy in stays numpy out.
    pt = batchgp.Params(t(ref.lengthscale), t(ref.outputscale), t(ref.noise), t(ref.mean), t(ref.alpha), "rq")
    assert isinstance(pt.noise, np.ndarray) and np.array_equal(pt.noise, ref.noise)
    assert batchgp.mll(x, y, pt, mask=mask, yvar=yvar) == m_ref
    assert isinstance(batchgp.mll(x, y, pt, mask=mask, yvar=yvar).mll, np.ndarray)


def test_svgp_with_tensors_equal_numpy_to_the_bit():
    x, y = make_data(2, 30, 1)
    z = np.linspace(0, 1, 5)[:, None]
    ref = batchgp.fit(x, y, z=z, max_iter=30)
    r = batchgp.fit(x, y, z=t(z), max_iter=30)  # z alone a tensor
    assert_same(r, ref)
    assert isinstance(r.params, batchgp.SvgpParams)
    xt = np.linspace(0, 1, 4)[:, None]
    assert_same(batchgp.predict(ref, t(xt)), batchgp.predict(ref, xt))
    assert_same(batchgp.evaluate(t(x), t(y), ref), batchgp.evaluate(x, y, ref))


def test_float32_tensors_and_precision():
    x, y = make_data(2, 20, 2)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    ref = batchgp.fit(x32, y32, max_iter=40, restarts=0)
    # float32 in, f64 run: float32 out (the input's dtype), the f64 numbers rounded.
    assert_same(batchgp.fit(t(x32), t(y32), max_iter=40, restarts=0), ref, dtype=torch.float32)
    # float64 in, f32 run: float64 out.
    assert_same(batchgp.fit(t(x), t(y), max_iter=40, restarts=0, precision="f32"),
                batchgp.fit(x, y, max_iter=40, restarts=0, precision="f32"))
    ref32 = batchgp.fit(x32, y32, max_iter=40, restarts=0, precision="f32")
    r32 = batchgp.fit(t(x32), t(y32), max_iter=40, restarts=0, precision="f32")
    assert_same(r32, ref32, dtype=torch.float32)
    xt = x32[0, :6]
    p_ref = batchgp.predict(x32, y32, ref32, xt, precision="f32")
    assert_same(batchgp.predict(x32, t(y32), ref32, xt, precision="f32"), p_ref, dtype=torch.float32)
    # bfloat16 (no numpy dtype) is read as f32: the f32 array of the same values.
    xb = t(x32).to(torch.bfloat16)
    xb32 = xb.float().numpy()
    assert_same(batchgp.mll(xb, y32, ref32), batchgp.mll(xb32, y32, ref32), dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex128, torch.int32])
@pytest.mark.parametrize("arg", ["x", "y", "mask", "yvar", "x_test"])
def test_a_tensor_of_an_unsupported_dtype_gets_numpys_error(arg, dtype):
    x, y = make_data(2, 10, 1)
    arrays = {"x": x, "y": y, "mask": np.ones((2, 10)), "yvar": np.full((2, 10), 0.01), "x_test": x[0, :3]}
    p = batchgp.Params(np.full((2, 1), 0.3), 1.0, 0.1, 0.0)

    def outcome(value):
        a = {**arrays, arg: value}
        try:
            out = batchgp.predict(a["x"], a["y"], p, a["x_test"], mask=a["mask"], yvar=a["yvar"])
        except batchgp.BatchGPError as e:
            return "error", str(e)
        return "ok", np.asarray(out.mean.numpy() if isinstance(out.mean, torch.Tensor) else out.mean)

    tensor = t(arrays[arg]).to(dtype)
    ours, numpy_ = outcome(tensor), outcome(tensor.numpy())
    assert ours[0] == numpy_[0]
    if ours[0] == "error":
        assert ours[1] == numpy_[1] and f"array `{arg}`" in ours[1], (ours, numpy_)
    else:
        assert np.array_equal(ours[1], numpy_[1])
    # What numpy does with them: integers are numbers, booleans only a mask, complex never.
    expected_ok = dtype == torch.int32 or (dtype == torch.bool and arg == "mask")
    assert (ours[0] == "ok") == expected_ok, ours


def test_a_tensor_without_values_is_refused_naming_it():
    x, _ = make_data(2, 10, 1)
    with pytest.raises(batchgp.BatchGPError, match=r"^array `y` could not be read from the tensor"):
        batchgp.fit(x, torch.empty(2, 10, device="meta"))


def test_outputs_go_to_the_first_tensors_device(tmp_path):
    # Without a second device here, the choice and the move are checked on the meta device,
    # which holds shapes only (the CUDA test below runs the whole call where a GPU is). A
    # result there still prints, saves and compares: those read its numpy twin, not the device.
    meta, cpu = torch.empty(2, device="meta", dtype=F64), torch.zeros(2)
    assert _tensors.target((np.zeros(2), None, meta, cpu), "f64") == (torch.device("meta"), F64)
    assert _tensors.target((np.zeros(2), cpu, meta), "f32") == (torch.device("cpu"), torch.float32)
    assert _tensors.target((cpu, meta), "f64") == (torch.device("cpu"), torch.float32)
    ints = torch.zeros(2, dtype=torch.int64)
    assert _tensors.target((ints, meta), "f32") == (torch.device("cpu"), F64)
    assert _tensors.target((ints,), "f32") == (torch.device("cpu"), torch.float32)
    assert _tensors.target((ints,), "f64") == (torch.device("cpu"), F64)
    assert _tensors.target((np.zeros(2), None), "f64") is None
    x, y = make_data(2, 10, 1)
    fitted = batchgp.fit(x, y, max_iter=20)
    results = (fitted, batchgp.mll(x, y, fitted), batchgp.predict(x, y, fitted, x[0, :4]))
    for ref in results + (batchgp.fit(x, y, num_inducing=3, max_iter=5),):
        moved = _tensors.result(ref, _tensors.target((meta,), "f64"))
        for k, v in numeric_fields(moved).items():
            assert v.device.type == "meta" and tuple(v.shape) == getattr(ref, k).shape, k
        assert repr(moved) == repr(ref) and moved.summary() == ref.summary() and moved == ref
        if hasattr(ref, "to_npz"):
            moved.to_npz(tmp_path / "m.npz")
            ref.to_npz(tmp_path / "r.npz")
            with np.load(tmp_path / "m.npz") as a, np.load(tmp_path / "r.npz") as b:
                assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in b.files if k != "kernel")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this torch: the CUDA case needs one")
def test_cuda_tensors_in_and_out():
    x, y = make_data(2, 15, 1)
    ref = batchgp.fit(x, y, max_iter=30, backend="cpu")
    r = batchgp.fit(x, t(y).cuda(), max_iter=30, backend="cpu")
    assert_same(r, ref, device="cuda:0")


def test_no_gradient_flows_back():
    """batchgp is not a torch operation: inputs that require grad are read, outputs carry no
    graph, and backward through them fails, leaving the inputs' grad untouched."""
    x, y = make_data(2, 15, 1)
    xt, yt = t(x, requires_grad=True), t(y, requires_grad=True)
    r = batchgp.fit(xt, yt, max_iter=30)
    m = batchgp.mll(xt, yt, r)
    assert not m.mll.requires_grad and m.mll.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        m.mll.sum().backward()
    assert xt.grad is None and yt.grad is None


def test_tensor_results_print_save_and_compare_as_numpy_ones(tmp_path):
    x, y = make_data(3, 20, 2)
    ref = batchgp.fit(x, y, max_iter=40)
    r = batchgp.fit(t(x), t(y), max_iter=40)
    assert repr(r) == repr(ref) and r.summary() == ref.summary()
    assert r == ref and ref == r and r == batchgp.fit(t(x), t(y), max_iter=40)
    r.to_npz(tmp_path / "t.npz")
    ref.to_npz(tmp_path / "n.npz")
    with np.load(tmp_path / "t.npz") as a, np.load(tmp_path / "n.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files if k != "kernel")


def test_import_batchgp_does_not_import_torch():
    code = """
        import sys
        import numpy as np
        import batchgp
        x = np.linspace(0, 1, 10)[:, None]
        r = batchgp.fit(x, np.sin(6 * x[:, 0])[None], max_iter=10)
        batchgp.predict(x, np.sin(6 * x[:, 0])[None], r, x)
        assert "torch" not in sys.modules, "torch imported"
        assert isinstance(r.lengthscale, np.ndarray)
        print("ok")
        """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_botorch_style_workflow_against_gpytorchs_posterior():
    """train_X (n, d) and train_Y (n, m) tensors as BoTorch holds them, straight into batchgp.fit
    (one GP per output: y = train_Y.T), then predict at test tensors; GPyTorch's posterior of a
    SingleTaskGP per output at batchgp's hyperparameters agrees to 1e-8."""
    gpytorch = pytest.importorskip("gpytorch")
    botorch_models = pytest.importorskip("botorch.models")
    g = torch.Generator().manual_seed(3)
    n, d, m = 40, 3, 2
    train_X = torch.rand(n, d, generator=g, dtype=F64)
    train_Y = torch.stack([torch.sin(5 * train_X[:, 0]) + train_X[:, 1] ** 2,
                           torch.cos(4 * train_X[:, 2]) * 2 + 1], -1)
    train_Y = train_Y + 0.1 * torch.randn(n, m, generator=g, dtype=F64)
    test_X = torch.rand(11, d, generator=g, dtype=F64)
    r = batchgp.fit(train_X, train_Y.T)
    assert isinstance(r.lengthscale, torch.Tensor) and r.lengthscale.shape == (m, d)
    assert torch.all(r.status <= 1) and torch.all(r.noise > 1e-3)
    p = batchgp.predict(train_X, train_Y.T, r, test_X)
    assert isinstance(p.mean, torch.Tensor) and p.mean.shape == (m, 11)
    for j in range(m):
        covar = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=d))
        model = botorch_models.SingleTaskGP(train_X, train_Y[:, j : j + 1], covar_module=covar,
                                            outcome_transform=None)
        model.covar_module.base_kernel.lengthscale = r.lengthscale[j]
        model.covar_module.outputscale = r.outputscale[j]
        model.mean_module.constant = r.mean[j]
        model.likelihood.noise = r.noise[j]
        model.eval()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            post = model.posterior(test_X)
            mean, var = post.mean[:, 0], post.variance[:, 0]
        torch.testing.assert_close(p.mean[j], mean, rtol=1e-8, atol=1e-8 * mean.abs().max().item())
        torch.testing.assert_close(p.var[j], var, rtol=1e-8, atol=1e-8 * var.max().item())
