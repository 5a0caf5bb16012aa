"""The models behind batchgp.fit, evaluate and predict: for the exact GP and the SVGP, the type
of its parameters, its result types, the fit options only it takes, and how a fit chooses it.
A third model is its parameter and result types (params.py, results.py), a third entry here, and
its arm in the binding's evaluate, predict and fit (python/src/models.rs, fit.rs)."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._checks import as_str, option_error
from .params import Params, SvgpParams
from .results import ElboResult, FitResult, MllResult, SvgpResult


class Model(NamedTuple):
    name: str
    """The ``model=`` of :func:`batchgp.fit`."""
    params: type
    """Its parameters."""
    fitted: type
    """Its fit's result (which stands for its ``.params`` wherever parameters are asked for)."""
    evaluation: type
    """What :func:`batchgp.evaluate` returns for it."""
    needs_data: bool
    """Whether its prediction conditions on the training data (an SVGP's is in its parameters)."""
    described: str
    """Its parameters in words, for messages."""
    options: dict
    """Its own fit options and their defaults (a value other than the default selects it)."""


EXACT = Model(
    "exact",
    Params,
    FitResult,
    MllResult,
    True,
    "a batchgp.Params (or a FitResult)",
    {"restarts": None, "bounds": None},
)
SVGP = Model(
    "svgp",
    SvgpParams,
    SvgpResult,
    ElboResult,
    False,
    "a batchgp.svgp.SvgpParams (or an SvgpResult)",
    {"num_inducing": None, "z": None, "batch_size": None},
)
MODELS = (EXACT, SVGP)


def of_params(params: Any, name: str = "params", models: tuple = MODELS) -> tuple[Model, Any]:
    """The model ``params`` are for (among ``models``) and the parameters themselves (a fit's
    result stands for its ``.params``), or BatchGPError naming the option ``name``."""
    for m in models:
        if isinstance(params, m.params):
            return m, params
        if isinstance(params, m.fitted):
            return m, params.params
    expected = " or ".join(m.described for m in models)
    raise option_error(name, f"expected {expected}, got {type(params).__name__}")


def for_fit(model: Any, init: Any, options: dict) -> Model:
    """The model a fit runs: ``model`` when given ("exact" or "svgp"), else the SVGP when its own
    options (num_inducing, z, batch_size) or an SVGP ``init`` are given, else the exact GP. An
    option of the other model (a value other than its default) is refused."""
    given = {k for m in MODELS for k, default in m.options.items() if _given(options.get(k, default), default)}
    if model is not None:
        chosen = next((m for m in MODELS if m.name == as_str("model", model)), None)
        if chosen is None:
            raise option_error("model", f"expected exact or svgp, got `{model}`")
    elif isinstance(init, (SvgpParams, SvgpResult)) or given & SVGP.options.keys():
        chosen = SVGP
    else:
        chosen = EXACT
    for other in MODELS:
        if other is not chosen:
            for k in sorted(given & other.options.keys()):
                raise option_error(k, f"only model='{other.name}' fits take it, not model='{chosen.name}' ones")
    return chosen


def _given(value: Any, default: Any) -> bool:
    """Whether an option holds something other than its default (0 and numpy's 0 alike)."""
    if default is None:
        return value is not None
    try:
        return bool(value != default)
    except (TypeError, ValueError):
        return True
