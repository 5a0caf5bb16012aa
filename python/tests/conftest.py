"""Shared helpers: data, and the batchgp CLI as the reference for "the Rust results".

The CLI (target/release/batchgp, or $BATCHGP_CLI) reads and writes .npz files, so comparing
against it checks everything the binding adds: conversions, natural vs log units, priors,
options. Tests that need it are skipped, saying so, when it has not been built.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import batchgp

REPO = Path(__file__).resolve().parents[2]
KERNELS = ("rbf", "matern12", "matern32", "matern52", "rq")


def cli_path() -> Path:
    return Path(os.environ.get("BATCHGP_CLI", REPO / "target" / "release" / "batchgp"))


@pytest.fixture(scope="session")
def cli() -> Path:
    path = cli_path()
    if not path.exists():
        if "BATCHGP_CLI" in os.environ:  # .ci/test-all.sh sets it: a missing CLI is a failure there
            pytest.fail(f"BATCHGP_CLI={path} does not exist")
        pytest.skip(f"the batchgp CLI is not built ({path}): cargo build --release, or set BATCHGP_CLI")
    return path


class Cli:
    """Runs the CLI on .npz files in a temporary folder."""

    def __init__(self, exe: Path, tmp: Path) -> None:
        self.exe, self.tmp, self.count = exe, tmp, 0

    def path(self, stem: str) -> str:
        self.count += 1
        return str(self.tmp / f"{stem}{self.count}")

    def data(self, x, y, mask=None, yvar=None) -> str:
        arrays = {"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y, dtype=np.float64)}
        if mask is not None:
            arrays["mask"] = np.asarray(mask, dtype=np.float64)
        if yvar is not None:
            arrays["yvar"] = np.asarray(yvar, dtype=np.float64)
        p = self.path("D") + ".npz"
        np.savez(p, **arrays)
        return p

    def params(self, params: batchgp.Params) -> str:
        with np.errstate(divide="ignore"):  # log(0) = -inf: the CLI's way to say 0
            arrays = self._log_params(params)
        p = self.path("P") + ".npz"
        np.savez(p, **arrays)
        return p

    @staticmethod
    def _log_params(params: batchgp.Params) -> dict:
        arrays = {
            "log_lengthscale": params.log_lengthscale,
            "log_outputscale": params.log_outputscale,
            "log_noise": params.log_noise,
            "mean": params.mean,
            "kernel": np.array(params.kernel),
        }
        if params.alpha is not None:
            arrays["log_alpha"] = params.log_alpha
        return arrays

    def test_points(self, x_test) -> str:
        p = self.path("T") + ".npz"
        np.savez(p, x=np.asarray(x_test, dtype=np.float64))
        return p

    def priors(self, priors: dict) -> str:
        p = self.path("priors") + ".toml"
        Path(p).write_text(priors_toml(priors))
        return p

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.exe), *args], check=False, capture_output=True, text=True)

    def ok(self, command: str, *args: str) -> dict:
        out = self.path("O") + ".npz"
        r = self.run(command, *args, "--backend", "cpu", "--out", out)
        assert r.returncode == 0, r.stderr
        with np.load(out) as f:
            return {k: f[k] for k in f.files}

    def error(self, command: str, *args: str) -> str:
        """The CLI's one-line message for a rejected request (without the `batchgp: error: `)."""
        r = self.run(command, *args, "--out", self.path("O") + ".npz")
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        line = r.stderr.strip().splitlines()[-1]
        prefix = "batchgp: error: "
        assert line.startswith(prefix), line
        return line[len(prefix) :]


@pytest.fixture
def run_cli(cli: Path, tmp_path: Path) -> Cli:
    return Cli(cli, tmp_path)


def _toml_value(a) -> str:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(_toml_value(r) for r in a) + "]"


def priors_toml(priors: dict) -> str:
    """The priors file (TOML) equivalent to a Python priors dict."""
    lines = []
    for target, prior in priors.items():
        args = ", ".join(f"{n} = {_toml_value(v)}" for n, v in zip(prior._names, prior._arrays))
        lines += [f"[{target}]", f"{prior.family} = {{ {args} }}"]
    return "\n".join(lines) + "\n"


def make_data(b=3, n=25, d=2, seed=0, shared=False):
    """Smooth functions plus noise, different per member."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, d) if shared else (b, n, d))
    xb = np.broadcast_to(x, (b, n, d))
    f = np.sin(4 * xb[..., 0] + np.arange(b)[:, None]) + 0.5 * np.cos(3 * xb[..., -1])
    y = f + rng.normal(0, 0.1, (b, n)) + np.arange(b)[:, None] * 0.3
    return x, y


def make_params(b=3, d=2, kernel="rbf", seed=1):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.5, 2.0, b) if kernel == "rq" else None
    return batchgp.Params(
        rng.uniform(0.2, 0.8, (b, d)),
        rng.uniform(0.5, 2.0, b),
        rng.uniform(0.01, 0.1, b),
        rng.uniform(-0.5, 0.5, b),
        alpha,
        kernel,
    )


def assert_close(a, b, rtol=1e-10, atol=1e-10, err_msg=""):
    np.testing.assert_allclose(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol, atol, True, err_msg
    )


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler for the test, so that ``_thread.interrupt_main`` raises
    KeyboardInterrupt even when the suite runs where SIGINT is ignored (a process started with
    nohup or in the background of a non-interactive shell inherits SIG_IGN, and then
    ``interrupt_main`` does nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

