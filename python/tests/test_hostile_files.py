"""Outputs written whole or not at all (issue 21): ``to_npz`` writes a temporary in the target's
folder and renames it over the target, so a write that fails part way (a file size limit, a
full disk) raises, leaves the old file byte for byte and no temporary behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import batchgp
from batchgp import results


def _fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 15, 2))
    y = np.sin(x[..., 0]) + 0.1 * rng.normal(size=(3, 15))
    return batchgp.fit(x, y, backend="cpu")


def _temporaries(folder) -> list:
    return [n for n in os.listdir(folder) if ".batchgp-" in n and n.endswith(".tmp")]


def test_to_npz_round_trips_and_keeps_permissions(tmp_path):
    r = _fit()
    path = tmp_path / "F.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    r.to_npz(path)
    assert (os.stat(path).st_mode & 0o777) == 0o640
    with np.load(path) as f:
        np.testing.assert_array_equal(f["mll"], r.mll)
    # np.savez's naming: a path without .npz gets it.
    r.to_npz(tmp_path / "G")
    assert (tmp_path / "G.npz").exists()
    assert _temporaries(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    r = _fit()
    path = tmp_path / "F.npz"
    r.to_npz(path)
    old = path.read_bytes()

    def full(f, **arrays):
        f.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.np, "savez", full)
    with pytest.raises(OSError, match="No space left"):
        r.to_npz(path)
    assert path.read_bytes() == old
    assert _temporaries(tmp_path) == []


def test_a_write_past_ulimit_f_keeps_the_old_file(tmp_path):
    # A real failure: 1 KiB file size limit in a child (Python ignores SIGXFSZ, so the write
    # raises EFBIG).
    r = _fit()
    path = tmp_path / "F.npz"
    r.to_npz(path)
    old = path.read_bytes()
    assert len(old) > 2048
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {sys.path!r}
        import numpy as np, batchgp
        rng = np.random.default_rng(1)
        x = rng.normal(size=(3, 15, 2)); y = rng.normal(size=(3, 15))
        r = batchgp.fit(x, y, backend="cpu")
        try:
            r.to_npz({str(path)!r})
        except OSError as e:
            print("raised", e.errno)
        """
    )
    out = subprocess.run(
        ["bash", "-c", 'ulimit -f 1; exec "$0" -c "$1"', sys.executable, code], capture_output=True, text=True
    )
    assert "raised 27" in out.stdout, out.stdout + out.stderr
    assert path.read_bytes() == old
    assert _temporaries(tmp_path) == []
