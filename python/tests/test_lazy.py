"""Submodules load on first attribute access (PEP 562): ``import batchgp`` then
``batchgp.dask.fit(...)`` works, nothing optional is imported before it is used, and a missing
optional dependency is an ImportError naming the extra that brings it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

import batchgp

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)


def test_import_batchgp_then_dask_fit():
    pytest.importorskip("dask")
    r = run(
        """
        import sys
        import numpy as np
        import batchgp
        assert not any(m in sys.modules for m in ("batchgp.dask", "batchgp.svgp", "dask")), "imported eagerly"
        x = np.linspace(0, 1, 20)[:, None]
        y = np.sin(6 * x[:, 0] + np.arange(4)[:, None])
        import dask.array as da
        chunked = da.from_array(y, chunks=(2, 20))
        ours = batchgp.dask.fit(x, chunked, merge_below=None, max_iter=20, backend="cpu")
        assert "batchgp.dask" in sys.modules and "batchgp.svgp" not in sys.modules
        assert ours == batchgp.fit(x, y, max_iter=20, backend="cpu")
        assert batchgp.svgp.fit is sys.modules["batchgp.svgp"].fit
        print("ok")
        """
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_submodules_are_listed_and_unknown_names_are_not():
    assert {"svgp", "dask", "torch", "sklearn"} <= set(dir(batchgp))
    from batchgp import svgp

    assert batchgp.svgp is svgp
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        batchgp.nonesuch  # noqa: B018


# Each submodule and the optional packages it needs (blocked below as if not installed).
OPTIONAL = {"svgp": (), "dask": ("dask", "distributed"), "torch": ("torch",), "sklearn": ("sklearn",)}


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_a_missing_dependency_names_its_extra(name):
    deps = OPTIONAL[name]
    exists = (Path(batchgp.__file__).parent / f"{name}.py").exists() or (Path(batchgp.__file__).parent / name).is_dir()
    # As if not installed: an import hook refuses them (a None entry in sys.modules would also
    # break scipy, which reads sys.modules["torch"].Tensor when "torch" is there).
    blocked = repr(set(deps))
    r = run(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Block())
        import batchgp
        try:
            batchgp.{name}
        except ImportError as e:
            print("ImportError:", e)
        except AttributeError as e:
            print("AttributeError:", e)
        else:
            print("loaded")
        """
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    if not exists:
        assert out.startswith("AttributeError: module 'batchgp' has no attribute"), out
    elif not deps:
        assert out == "loaded", out
    else:
        extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
        extra = out.split("pip install 'batchgp[")[-1].rstrip("]'")
        assert out.startswith(f"ImportError: batchgp.{name} needs "), out
        assert extra in extras, (out, sorted(extras))
