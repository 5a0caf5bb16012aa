"""batchgp.dask (docs/design.md section 13): a batch chunked along its member axis, one task per chunk,
gives the in-process results member for member (bit for bit in f64), on dask's local schedulers
and on a dask.distributed LocalCluster with two worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import nullcontext

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import batchgp
import batchgp.dask as bd

B, N, D = 14, 24, 2
CHUNKS = (5, 4, 3, 2)


def ragged_batch(b=B, n=N, d=D, seed=0):
    """Normal members plus the awkward ones: ragged (4, 9), empty (6), failing (8: y ~ 1e200,
    status 3), constant y (10: degenerate), NaN under the mask (4)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, n, d))
    y = np.sin(5 * x[..., 0] + np.arange(b)[:, None]) + 0.4 * x[..., -1] + rng.normal(0, 0.1, (b, n))
    mask = np.ones((b, n))
    mask[4, n // 2 :] = 0
    y[4, -1] = np.nan
    x[4, -1, 0] = np.inf
    mask[6] = 0
    y[8] *= 1e200
    mask[9, :3] = 0
    y[10] = 2.5
    yvar = rng.uniform(0.0, 0.01, (b, n))
    return x, y, mask, yvar


def per_gp_priors(b=B, d=D, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "lengthscale": batchgp.LogNormal(rng.normal(-0.5, 0.3, (b, d)), 1.0),  # B lists of D numbers
        "noise": batchgp.Gamma(rng.uniform(1.0, 3.0, b), 20.0),  # a list of B numbers
        "mean": batchgp.Normal(0.0, 5.0),  # a number
    }


def chunked(*arrays, chunks=CHUNKS):
    return [None if a is None else da.from_array(a, chunks=(chunks,) + a.shape[1:]) for a in arrays]


@pytest.fixture(autouse=True)
def one_task_per_chunk(monkeypatch):
    """The tests' batches are small: keep one task per chunk, so that several tasks really run
    (the default merges chunks under MERGE_BELOW members; see test_small_chunks_merge_by_default)."""
    monkeypatch.setattr(bd, "MERGE_BELOW", None)


def test_small_chunks_merge_by_default(monkeypatch):
    monkeypatch.setattr(bd, "MERGE_BELOW", 64)
    x, y, mask, _ = ragged_batch()
    whole = batchgp.fit(x, y, mask=mask, backend="cpu")
    dx, dy = chunked(x, y)
    assert bd.fit(dx, dy, mask=mask, backend="cpu") == whole
    assert bd._plan([("y", dy)], "auto").groups != bd._plan([("y", dy)], None).groups


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as c:
        yield c


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture(params=["threads", "sync", "distributed"])
def scheduler(request):
    """dask's default (threaded) scheduler, the synchronous one, and the active Client's."""
    if request.param == "distributed":
        c = request.getfixturevalue("client")
        yield c
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


def test_fit_equals_in_process_member_for_member(scheduler):
    x, y, mask, yvar = ragged_batch()
    priors = per_gp_priors()
    priors["outputscale"] = batchgp.LogNormal(0.0, 1.5)
    whole = batchgp.fit(x, y, mask=mask, yvar=yvar, priors=priors, backend="cpu")
    assert set(whole.status) >= {0, 3, 4, 5}
    dx, dy, dm, dv = chunked(x, y, mask, yvar)
    got = bd.fit(dx, dy, mask=dm, yvar=dv, priors=priors, backend="cpu")
    assert isinstance(got, batchgp.FitResult)
    assert got == whole  # every array, NaN where NaN, and rounds
    np.testing.assert_array_equal(got.reason, whole.reason)


def test_fit_on_the_active_client_one_task_per_chunk(client):
    x, y, mask, _yvar = ragged_batch()
    dx, dy = chunked(x, y)
    with distributed.get_task_stream(client) as ts:
        got = bd.fit(dx, dy, mask=mask, backend="cpu")
    keys = [t["key"] for t in ts.data]
    fits = {str(k) for k in keys if "batchgp-fit-" in str(k)}
    assert len(fits) == len(CHUNKS)
    assert got == batchgp.fit(x, y, mask=mask, backend="cpu")


def test_fit_with_init_fix_and_kernel():
    x, y, mask, yvar = ragged_batch()
    rng = np.random.default_rng(3)
    init = batchgp.Params(
        rng.uniform(0.2, 1.0, (B, D)), rng.uniform(0.5, 2, B), 0.05, 0.0, rng.uniform(0.5, 2, B), "rq"
    )
    opts = {"kernel": "rq", "init": init, "fix": "mean", "max_iter": 60, "backend": "cpu"}
    whole = batchgp.fit(x, y, mask=mask, yvar=yvar, **opts)
    dx, dy = chunked(x, y)
    got = bd.fit(dx, dy, mask=mask, yvar=yvar, **opts)
    assert got == whole
    assert got.alpha is not None and got.kernel == "rq"


def test_fit_shared_x_numpy_with_dask_y():
    x, y, mask, _ = ragged_batch()
    xs = x[0].copy()
    xs[-1, 0] = 0.5
    whole = batchgp.fit(xs, y, mask=mask, backend="cpu")
    (dy,) = chunked(y)
    assert bd.fit(xs, dy, mask=mask, backend="cpu") == whole
    # x shared as a (chunked) dask array too
    assert bd.fit(da.from_array(xs, chunks=(7, 1)), dy, mask=mask, backend="cpu") == whole


@pytest.mark.xfail(
    not bd.SUPPORTS_FIRST_MEMBER,
    reason="batchgp.fit takes no first_member in this build: restarts outside the first chunk spread differently",
    strict=True,
)
def test_fit_restarts_equal_in_process():
    x, y, mask, _ = ragged_batch()
    whole = batchgp.fit(x, y, mask=mask, restarts=2, seed=11, backend="cpu")
    dx, dy = chunked(x, y)
    with pytest.warns(RuntimeWarning, match="restarts") if not bd.SUPPORTS_FIRST_MEMBER else nullcontext():
        got = bd.fit(dx, dy, mask=mask, restarts=2, seed=11, backend="cpu")
    first = CHUNKS[0]
    np.testing.assert_array_equal(got.objective[:first], whole.objective[:first])  # same streams there
    assert got == whole


def test_merge_below_groups_small_chunks():
    x, y, mask, _yvar = ragged_batch()
    dx, dy = chunked(x, y, chunks=(3, 3, 3, 3, 2))
    whole = batchgp.fit(x, y, mask=mask, backend="cpu")
    assert bd.fit(dx, dy, mask=mask, merge_below=6, backend="cpu") == whole
    params = whole.params
    xt = np.linspace(0, 1, 5)[:, None] * np.ones(D)
    p = bd.predict(dx, dy, params, xt, mask=mask, merge_below=6, backend="cpu")
    assert p.mean.chunks[0] == (6, 8)  # [3+3], [3+3+2]: the short last group joins the one before
    assert p.compute() == batchgp.predict(x, y, params, xt, mask=mask, backend="cpu")


def test_mll_equals_in_process(scheduler):
    x, y, mask, yvar = ragged_batch()
    priors = per_gp_priors()
    priors["outputscale"] = batchgp.HalfCauchy(2.0)
    params = batchgp.fit(x, y, mask=mask, yvar=yvar, backend="cpu").params
    whole = batchgp.mll(x, y, params, mask=mask, yvar=yvar, priors=priors, backend="cpu")
    dx, dy, dm, dv = chunked(x, y, mask, yvar)
    got = bd.mll(dx, dy, params, mask=dm, yvar=dv, priors=priors, backend="cpu")
    assert isinstance(got, batchgp.MllResult)
    assert got == whole
    assert np.isfinite(got.grad_log_lengthscale[0]).all()


def test_predict_is_lazy_and_equals_eager(scheduler):
    x, y, mask, yvar = ragged_batch()
    fitted = batchgp.fit(x, y, mask=mask, yvar=yvar, backend="cpu")
    xt = np.random.default_rng(5).uniform(0, 1, (9, D))
    whole = batchgp.predict(x, y, fitted, xt, mask=mask, yvar=yvar, full_covariance=True, backend="cpu")
    dx, dy, dm, dv = chunked(x, y, mask, yvar)
    p = bd.predict(dx, dy, fitted, xt, mask=dm, yvar=dv, full_covariance=True, backend="cpu")
    assert isinstance(p, batchgp.Prediction)
    for k in ("mean", "var", "var_y", "lower", "upper", "status", "jitter", "covariance"):
        a = getattr(p, k)
        assert isinstance(a, da.Array), k
        assert a.chunks[0] == CHUNKS, k
        assert a.dtype == getattr(whole, k).dtype, k
    assert p.samples is None
    assert "LazyPrediction(B=14, M=9" in repr(p)
    eager = p.compute()
    assert type(eager) is batchgp.Prediction
    assert eager == whole
    np.testing.assert_array_equal(p.mean[5:9].compute(), whole.mean[5:9])  # any slice, alone


def test_predict_per_member_test_points():
    x, y, mask, _yvar = ragged_batch()
    params = batchgp.fit(x, y, mask=mask, backend="cpu").params
    xt = np.random.default_rng(6).uniform(0, 1, (B, 4, D))
    whole = batchgp.predict(x, y, params, xt, mask=mask, backend="cpu")
    dx, dy, dt = chunked(x, y, xt)
    assert bd.predict(dx, dy, params, dt, mask=mask, backend="cpu").compute() == whole
    # numpy (B, M, D) test points are split like x
    assert bd.predict(dx, dy, params, xt, mask=mask, backend="cpu").compute() == whole


def test_predict_samples():
    x, y, mask, _ = ragged_batch()
    params = batchgp.fit(x, y, mask=mask, backend="cpu").params
    xt = np.linspace(0, 1, 6)[:, None] * np.ones(D)
    whole = batchgp.predict(x, y, params, xt, mask=mask, samples=3, seed=2, backend="cpu")
    dx, dy = chunked(x, y)
    if bd._PREDICT_FIRST_MEMBER:
        p = bd.predict(dx, dy, params, xt, mask=mask, samples=3, seed=2, backend="cpu")
        assert p.compute() == whole
    else:
        with pytest.warns(RuntimeWarning, match="random streams"):
            p = bd.predict(dx, dy, params, xt, mask=mask, samples=3, seed=2, backend="cpu")
        got = p.compute()
        assert p.samples.chunks[1] == CHUNKS and got.samples.shape == whole.samples.shape
        first = CHUNKS[0]
        np.testing.assert_array_equal(got.samples[:, :first], whole.samples[:, :first])
        np.testing.assert_array_equal(got.mean, whole.mean)


def test_from_npz_round_trip(tmp_path):
    x, y, mask, _ = ragged_batch(seed=4)
    y[4, -1] = 0.0  # shard files hold what the CLI would read
    x[4, -1, 0] = 0.0
    # shard 0: x per member with a mask; shard 1: x shared by its members, no mask; shard 2: f32 y
    shared = x[5].copy()
    np.savez(tmp_path / "s0.npz", x=x[:5], y=y[:5], mask=mask[:5])
    np.savez(tmp_path / "s1.npz", x=shared, y=y[5:9])
    np.savez_compressed(tmp_path / "s2.npz", x=x[9:], y=y[9:].astype(np.float32), mask=mask[9:])
    xx, yy, mm = bd.from_npz(str(tmp_path / "s*.npz"))
    assert xx.chunks[0] == yy.chunks[0] == mm.chunks[0] == (5, 4, 5)
    assert (xx.shape, yy.shape, mm.shape) == ((B, N, D), (B, N), (B, N))
    expect_x = np.concatenate([x[:5], np.broadcast_to(shared, (4, N, D)), x[9:]])
    expect_y = np.concatenate([y[:9], y[9:].astype(np.float32).astype(np.float64)])
    expect_m = np.concatenate([mask[:5], np.ones((4, N)), mask[9:]])
    np.testing.assert_array_equal(xx.compute(), expect_x)
    np.testing.assert_array_equal(yy.compute(), expect_y)
    np.testing.assert_array_equal(mm.compute(), expect_m)
    whole = batchgp.fit(expect_x, expect_y, mask=expect_m, backend="cpu")
    assert bd.fit(xx, yy, mask=mm, backend="cpu") == whole
    # a list of paths, and shards without masks
    np.savez(tmp_path / "t0.npz", x=x[:3], y=y[:3])
    np.savez(tmp_path / "t1.npz", x=x[3:4], y=y[3:4])
    xx, yy, mm = bd.from_npz([tmp_path / "t0.npz", tmp_path / "t1.npz"])
    assert mm is None and yy.chunks[0] == (3, 1)
    np.testing.assert_array_equal(xx.compute(), x[:4])


def test_from_npz_rejects(tmp_path):
    x, y, _, _ = ragged_batch()
    np.savez(tmp_path / "a.npz", x=x[:3], y=y[:3])
    np.savez(tmp_path / "b.npz", x=x[3:5, :10], y=y[3:5, :10])
    np.savez(tmp_path / "c.npz", x=x[:3])
    with pytest.raises(batchgp.BatchGPError, match="every shard needs the same N and D"):
        bd.from_npz([tmp_path / "a.npz", tmp_path / "b.npz"])
    with pytest.raises(batchgp.BatchGPError, match="missing array `y`"):
        bd.from_npz([tmp_path / "c.npz"])
    with pytest.raises(batchgp.BatchGPError, match="no file matches"):
        bd.from_npz(str(tmp_path / "nothing*.npz"))


def _message(f, *args, **kwargs):
    """The message of the BatchGPError that f(*args, **kwargs) raises."""
    with pytest.raises(batchgp.BatchGPError) as e:
        f(*args, **kwargs)
    return str(e.value)


def test_chunking_errors():
    x, y, mask, _yvar = ragged_batch()
    dy = da.from_array(y, chunks=(CHUNKS, -1))
    msg = _message(lambda: bd.fit(da.from_array(x, chunks=(CHUNKS, 12, -1)), dy))
    assert "`x` is chunked along axis 1" in msg and "rechunk" in msg
    msg = _message(lambda: bd.fit(da.from_array(x, chunks=(CHUNKS, -1, -1)), da.from_array(y, chunks=(7, -1))))
    assert "`y` is chunked (7, 7)" in msg and "(5, 4, 3, 2)" in msg
    msg = _message(lambda: bd.fit(x[0], da.from_array(y, chunks=(CHUNKS, 12))))
    assert "`y` is chunked along axis 1" in msg
    msg = _message(
        lambda: bd.mll(x[0], dy, batchgp.Params(np.ones((B, D)), 1, 1, 0), mask=da.from_array(mask, chunks=7))
    )
    assert "`mask` is chunked" in msg


def test_svgp_fits_are_refused_before_any_task():
    """batchgp.dask.fit fits exact GPs: batchgp.fit's SVGP options are refused with a
    BatchGPError that says so (not an AttributeError from assembling SVGP chunks)."""
    x, y, mask, _yvar = ragged_batch()
    dx, dy = chunked(x, y)
    hyp = batchgp.Params(np.ones((B, D)), 1.0, 0.1, 0.0)
    svgp_init = batchgp.SvgpParams(np.zeros((B, 3, D)), hyperparameters=hyp)
    for opts in [{"num_inducing": 4}, {"model": "svgp"}, {"batch_size": 8}, {"z": np.zeros((3, D))},
                 {"init": svgp_init}]:
        msg = _message(bd.fit, dx, dy, backend="cpu", **opts)
        assert "batchgp.dask.fit fits exact GPs only" in msg, (opts, msg)
    # an exact option with model='svgp' reads as in process
    assert "restarts" in _message(bd.fit, dx, dy, model="svgp", restarts=2)
    # the exact model, named, still fits
    r = bd.fit(dx, dy, mask=mask, model="exact", max_iter=3, backend="cpu")
    assert r.params.lengthscale.shape == (B, D)


def test_rejections_read_as_in_process():
    """Shapes, priors, params and non-finite data: the in-process message, member indices
    counted in the whole batch."""
    x, y, mask, _yvar = ragged_batch()
    dx, dy = chunked(x, y)
    params = batchgp.Params(np.ones((B, D)), 1.0, 0.1, 0.0)
    cases = [
        ({"y": y[:-1]}, {}),
        ({"y": y[:, :-1]}, {}),
        ({"mask": mask[:, :-1]}, {}),
        ({}, {"priors": {"noise": batchgp.Gamma([2.0] * (B - 1), 1.0)}}),
        ({}, {"priors": {"lengthscale": batchgp.Gamma(np.ones((B, D + 1)), 1.0)}}),
        ({}, {"priors": {"noise": batchgp.Gamma([2.0] * 11 + [-1.0] + [2.0] * (B - 12), 1.0)}}),
        ({}, {"init": batchgp.Params(np.ones((B - 1, D)), 1.0, 0.1, 0.0)}),
        ({}, {"init": batchgp.Params(np.ones((B, D + 1)), 1.0, 0.1, 0.0)}),
        ({}, {"kernel": "nope"}),
    ]
    for data, opts in cases:
        args = {"x": x, "y": y, "mask": mask} | data
        expect = _message(batchgp.fit, args["x"], args["y"], mask=args["mask"], backend="cpu", **opts)
        dargs = {k: chunked(v)[0] if v.shape[0] == B else v for k, v in args.items()}
        got = _message(bd.fit, dargs["x"], dargs["y"], mask=dargs["mask"], backend="cpu", **opts)
        assert got == expect, (data, opts)
    # a non-finite value outside the mask in member 11 (the third chunk): the whole batch's index
    bad = y.copy()
    bad[11, 3] = np.nan
    expect = _message(lambda: batchgp.fit(x, bad, mask=mask, backend="cpu"))
    assert "(member 11, index 3)" in expect
    assert _message(lambda: bd.fit(dx, chunked(bad)[0], mask=mask, backend="cpu")) == expect
    assert _message(lambda: bd.mll(dx, chunked(bad)[0], params, mask=mask, backend="cpu")) == _message(
        lambda: batchgp.mll(x, bad, params, mask=mask, backend="cpu")
    )
    # params and test points
    for p, xt in [
        (batchgp.Params(np.ones((B - 2, D)), 1, 1, 0), np.ones((3, D))),
        (params, np.ones((3, D + 1))),
        (params, np.ones((B - 1, 3, D))),
    ]:
        expect = _message(batchgp.predict, x, y, p, xt, mask=mask, backend="cpu")
        assert _message(bd.predict, dx, dy, p, xt, mask=mask, backend="cpu") == expect
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        bd.fit(dx, dy, nope=1)


def test_a_worker_lost_mid_fit_loses_and_duplicates_no_member():
    """A worker killed while it runs a chunk: dask runs that chunk again elsewhere and the fit
    equals the in-process one, every member once."""
    rng = np.random.default_rng(9)
    b, n, d = 48, 400, 3
    x = rng.uniform(0, 1, (b, n, d))
    y = np.sin(6 * x[..., 0]) * np.cos(4 * x[..., 1] + np.arange(b)[:, None]) + rng.normal(0, 0.05, (b, n))
    whole = batchgp.fit(x, y, backend="cpu")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cl,
        distributed.Client(cl) as client,
    ):
        pids = client.run(os.getpid)
        dx, dy = chunked(x, y, chunks=(8,) * 6)
        out: dict = {}

        def run():
            try:
                out["result"] = bd.fit(dx, dy, backend="cpu")
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                out["error"] = e

        t = threading.Thread(target=run)
        t.start()
        victim = None
        deadline = time.time() + 60
        while victim is None and time.time() < deadline:
            for addr, keys in client.processing().items():
                if any("batchgp-fit-" in str(k) for k in keys) and addr in pids:
                    victim = addr
                    break
            time.sleep(0.05)
        assert victim is not None, "no fit task started"
        time.sleep(0.2)
        os.kill(pids[victim], signal.SIGKILL)
        t.join(300)
        assert not t.is_alive()
        assert victim not in client.scheduler_info()["workers"]  # it was lost (its nanny starts another)
    assert "error" not in out, out.get("error")
    assert out["result"] == whole
