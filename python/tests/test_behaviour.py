"""The GIL is released during numerical work, Ctrl-C stops a fit, progress, threads, info."""

import _thread
import os
import sys
import threading
import time

import numpy as np
import pytest
from conftest import make_data

import batchgp


@pytest.fixture(scope="module")
def long_fit():
    """A fit of a second or more, and how long it takes."""
    x, y = make_data(240, 100, 2, seed=4)
    t = time.perf_counter()
    r = batchgp.fit(x, y, backend="cpu")
    return x, y, time.perf_counter() - t, r


def test_a_thread_keeps_running_during_a_fit(long_fit):
    x, y, _, reference = long_fit
    ticks = []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=counter)
    t.start()
    try:
        time.sleep(0.05)
        start = time.perf_counter()
        r = batchgp.fit(x, y, backend="cpu")
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [s for s in ticks if start <= s <= end]
    gaps = np.diff([start, *during, end])
    # Were the GIL held for the fit, the counter would stop for all of it (one gap of end - start).
    assert len(during) > 0.2 * (end - start) / 0.001, (len(during), end - start)
    assert gaps.max() < 0.25, gaps.max()
    assert np.array_equal(r.objective, reference.objective)


def test_ctrl_c_stops_a_fit(long_fit, sigint_raises):
    x, y, seconds, _ = long_fit
    delay = min(0.3, seconds / 5)
    timer = threading.Timer(delay, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        batchgp.fit(x, y, backend="cpu")
    elapsed = time.perf_counter() - start
    timer.join()
    assert elapsed < delay + 0.5 and elapsed < 0.8 * seconds, (elapsed, seconds)
    # and the next call works
    assert batchgp.fit(x[:2], y[:2]).status.shape == (2,)


def test_progress_lines_without_tqdm(monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: plain lines
    x, y = make_data(4, 30, 2)
    r = batchgp.fit(x, y, progress=True)
    err = capfd.readouterr().err
    # one run per member and start (the default restarts + 1)
    assert err.startswith(f"batchgp fit: {4 * (batchgp._batchgp.DEFAULT_RESTARTS + 1)} runs\n")
    assert f"converged {int(np.sum(r.status <= 1))} of 4 members" in err.splitlines()[-1]


def test_progress_with_tqdm(capfd):
    pytest.importorskip("tqdm")
    x, y = make_data(4, 30, 2)
    batchgp.fit(x, y, progress=True)
    assert "batchgp fit" in capfd.readouterr().err


def test_no_progress_by_default(capfd):
    x, y = make_data(4, 30, 2)
    batchgp.fit(x, y)
    assert capfd.readouterr().err == ""


def test_set_num_threads():
    x, y = make_data(16, 40, 2)
    before = batchgp.fit(x, y, backend="cpu")
    try:
        batchgp.set_num_threads(1)
        assert batchgp.info()["threads"] == 1
        one = batchgp.fit(x, y, backend="cpu")
        batchgp.set_num_threads(3)
        assert batchgp.info()["threads"] == 3
        three = batchgp.mll(x, y, before.params, backend="cpu")
    finally:
        batchgp.set_num_threads(os.cpu_count() or 1)
    assert np.array_equal(one.objective, before.objective)
    assert np.array_equal(three.objective, batchgp.mll(x, y, before.params, backend="cpu").objective)


def test_info():
    i = batchgp.info()
    for key in ("version", "backends", "default_backend", "gpu", "cuda", "kernels", "driver", "cpu", "threads"):
        assert key in i
    assert i["version"] == batchgp.__version__
    assert i["backends"][0] == "cpu"
    assert ("cuda" in i["backends"]) == (i["gpu"] is not None)
