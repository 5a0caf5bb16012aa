"""The type stub batchgp/_batchgp.pyi against the extension it describes: every public function,
constant and class of the built module is in the stub and nothing else is; each function's
parameters (names, order, which have defaults) are the runtime signature's; the fit options'
TypedDicts name the fields the binding reads (python/src/fit.rs) and the Python layer passes."""

import ast
import inspect
import re
from pathlib import Path

import batchgp
from batchgp import _batchgp as native
from batchgp import _models

PYTHON = Path(__file__).resolve().parents[1]
STUB = ast.parse((PYTHON / "batchgp" / "_batchgp.pyi").read_text())


def stub_items():
    """name -> node of the stub's public top-level functions, annotated names and classes."""
    out = {}
    for node in STUB.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return {k: v for k, v in out.items() if not k.startswith("_") or k == "__version__"}


def runtime_items():
    names = {k for k in dir(native) if not k.startswith("_")} | {"__version__"}
    return {k: getattr(native, k) for k in names}


def test_the_stub_names_what_the_extension_has():
    stub, runtime = stub_items(), runtime_items()
    assert stub.keys() == runtime.keys(), (sorted(stub.keys() - runtime.keys()), sorted(runtime.keys() - stub.keys()))
    for name, node in stub.items():
        value = runtime[name]
        if isinstance(node, ast.ClassDef):
            assert isinstance(value, type), name
        elif isinstance(node, ast.FunctionDef):
            assert callable(value) and not isinstance(value, type), name
        else:
            assert not callable(value), name


def test_each_functions_parameters_are_the_runtime_signatures():
    for name, node in stub_items().items():
        if not isinstance(node, ast.FunctionDef):
            continue
        a = node.args
        params = a.posonlyargs + a.args
        stub = [(p.arg, i >= len(params) - len(a.defaults)) for i, p in enumerate(params)]
        runtime = [
            (p.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(getattr(native, name)).parameters.values()
        ]
        assert stub == runtime, name


def typed_dict_keys(name):
    node = next(n for n in STUB.body if isinstance(n, ast.ClassDef) and n.name == name)
    return [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)]


def rust_struct_fields(name):
    src = (PYTHON / "src" / "fit.rs").read_text()
    body = re.search(rf"struct {name}<'py> \{{(.*?)\}}", src, re.DOTALL).group(1)
    return re.findall(r"^\s*(\w+):", body, re.MULTILINE)


def test_the_fit_options_are_those_the_binding_reads():
    for stub_name, rust_name, model in (
        ("_ExactOptions", "ExactOptions", _models.EXACT),
        ("_SvgpOptions", "SvgpOptions", _models.SVGP),
    ):
        keys = typed_dict_keys(stub_name)
        assert keys == rust_struct_fields(rust_name) and set(keys) == set(model.options), stub_name
    # bounds: what batchgp.fit accepts reaches the extension as one of the stub's two forms.
    bounds = next(n for n in STUB.body if isinstance(n, ast.AnnAssign) and n.target.id == "_Bounds")
    text = ast.unparse(bounds.value)
    assert text == "tuple[float, float] | Sequence[tuple[str, _Array, _Array]]", text
    from batchgp._checks import as_bounds

    assert as_bounds((0.1, 10)) == (0.1, 10.0)
    [(kind, low, high)] = as_bounds({"noise": (1e-4, [1.0, 2.0])})
    assert kind == "noise" and low.shape == () and high.shape == (2,)
    assert "bounds : (low, high) or {name: (low, high)}" in batchgp.fit.__doc__
