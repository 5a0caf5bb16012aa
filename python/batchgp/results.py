"""Result types: numpy arrays per member (torch tensors for a call given tensors, batchgp._tensors),
a readable repr, and summary() tables in natural units."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _batchgp as _native
from .params import Params, SvgpParams

STATUS_TEXT: tuple = tuple(_native.STATUS_TEXT)
"""Status codes in words, by code: 0 ok, 1 ok (jitter), 2 iteration limit, 3 failed, 4 empty,
5 degenerate (docs/design.md sections 4 and 14)."""


def _short(a: np.ndarray, edge: int = 3) -> str:
    """[v0, v1, v2, ..., v-1] of a 1-d array, 6 significant digits."""
    a = np.asarray(a).ravel()
    if len(a) <= 2 * edge + 1:
        return "[" + ", ".join(_num(v) for v in a) + "]"
    return "[" + ", ".join([_num(v) for v in a[:edge]] + ["..."] + [_num(v) for v in a[-edge:]]) + "]"


def _status_counts(status: np.ndarray) -> str:
    codes, counts = np.unique(status, return_counts=True)
    return ", ".join(f"{n} {STATUS_TEXT[c] if 0 <= c < len(STATUS_TEXT) else c}" for c, n in zip(codes, counts))


def _num(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if np.isnan(v):
        return "nan"
    return f"{v:.6g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_rows: int | None) -> str:
    """Right-aligned columns; with more than max_rows rows, the first and last halves."""
    rows = [list(r) for r in rows]
    skipped = 0
    if max_rows is not None and len(rows) > max_rows:
        head = max_rows - max_rows // 2
        skipped = len(rows) - max_rows
        rows = rows[:head] + [["..."] * len(headers)] + rows[len(rows) - max_rows // 2 :]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(headers)] + [line(r) for r in rows]
    if skipped:
        out.append(f"({skipped} members not shown; summary(max_rows=None) shows all)")
    return "\n".join(out)


def _hyper_headers(d: int, alpha: bool) -> list:
    """Column names of the hyperparameters in a summary table."""
    return [f"lengthscale[{k}]" for k in range(d)] + ["outputscale", "noise", "mean"] + (["alpha"] if alpha else [])


def _hyper_cells(r: Any, m: int) -> list:
    """Member m's hyperparameters (attributes of r) as summary cells."""
    cells = [_num(v) for v in r.lengthscale[m]] + [_num(r.outputscale[m]), _num(r.noise[m]), _num(r.mean[m])]
    if r.alpha is not None:
        cells.append(_num(r.alpha[m]))
    return cells


def _with_text_arrays(arrays: dict) -> dict:
    """A fit's arrays with reason and outcome (lists of str from the extension) as str arrays."""
    return {
        **arrays,
        "reason": np.array(arrays["reason"], dtype=str),
        "outcome": np.array(arrays["outcome"], dtype=str),
    }



def save_npz(path: Any, arrays: dict) -> None:
    """``np.savez(path, **arrays)`` that never leaves a half-written file, as the command line
    writes: the arrays go to ``.NAME.batchgp-PID.tmp`` in the target's folder, are synced and
    renamed over the target (which keeps its permissions; a symbolic link is followed). A write
    that fails part way (disk full, a file size limit) removes the temporary and raises, the old
    file untouched. A file object, or a target that is not a regular file (/dev/null), is written
    directly."""
    if not isinstance(path, (str, os.PathLike)):
        np.savez(path, **arrays)
        return
    target = os.fspath(path)
    if isinstance(target, bytes):
        target = os.fsdecode(target)
    if not target.endswith(".npz"):
        target += ".npz"  # as np.savez names it
    if os.path.islink(target):
        target = os.path.realpath(target)
    old = os.stat(target) if os.path.exists(target) else None
    if old is not None and not stat.S_ISREG(old.st_mode):
        np.savez(target, **arrays)
        return
    folder, name = os.path.split(target)
    temp = os.path.join(folder or ".", f".{name}.batchgp-{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.remove(temp)  # only this process writes this name
    try:
        with open(temp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            os.chmod(temp, stat.S_IMODE(old.st_mode))
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise

class _Result:
    _fields: tuple = ()
    _optional: tuple = ()
    _host: Any = None
    """Where the numeric arrays are torch tensors (batchgp._tensors): this result with numpy
    arrays, which summary, repr, to_npz and == read."""

    def __init__(self, arrays: dict) -> None:
        for k in self._fields:
            setattr(self, k, arrays[k])
        for k in self._optional:
            setattr(self, k, arrays.get(k))

    def _dict(self) -> dict:
        return {k: getattr(self, k) for k in self._fields + self._optional if getattr(self, k) is not None}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        if self._host is not None or other._host is not None:  # type: ignore[attr-defined]
            return (self._host or self) == (other._host or other)  # type: ignore[attr-defined]
        a, b = self._dict(), other._dict()  # type: ignore[attr-defined]
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=_nan_ok(a[k])) for k in a)

    __hash__ = None  # type: ignore[assignment]


def _nan_ok(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


class _Objective(_Result):
    """An objective, ``_term`` (the data term: mll or elbo) + log prior, and its gradient (every
    ``grad_*`` array) at given parameters, per member: what MllResult and ElboResult share."""

    _term = ""

    def _dims(self) -> dict:
        """The sizes shown: B, [M], D."""
        return {}

    def __repr__(self) -> str:
        if self._host is not None:
            return repr(self._host)
        dims = ", ".join(f"{k}={v}" for k, v in self._dims().items())
        return (
            f"{type(self).__name__}({dims}, {self._term}={_short(getattr(self, self._term))}, "
            f"objective={_short(self.objective)}, status: {_status_counts(self.status)})"
        )

    def summary(self, max_rows: int | None = 50) -> str:
        """A table per member: status, the data term, log prior, objective, jitter, largest
        |gradient|."""
        if self._host is not None:
            return self._host.summary(max_rows)
        b = len(self.objective)
        grads = [v.reshape(b, -1) for k, v in self._dict().items() if k.startswith("grad_")]
        gmax = np.max(np.abs(np.hstack(grads)), axis=1)
        term = getattr(self, self._term)
        rows = [
            [str(k), STATUS_TEXT[self.status[k]]]
            + [_num(v[k]) for v in (term, self.log_prior, self.objective, self.jitter, gmax)]
            for k in range(b)
        ]
        m = self._dims().get("M")
        head = f"{type(self).__name__}: {b} members{'' if m is None else f', M = {m}'}; {_status_counts(self.status)}"
        headers = ["member", "status", self._term, "log_prior", "objective", "jitter", "max|grad|"]
        return head + "\n" + _table(headers, rows, max_rows)


class _Fit(_Result):
    """A fit, per member: the model's parameters (``params``, made by ``_params``), the data term
    ``_term`` (mll or elbo), log prior, objective, status, reason, outcome, jitter, iterations;
    what FitResult and SvgpResult share."""

    _term = ""
    _shown = "objective"
    """The array repr shows."""

    def __init__(self, arrays: dict) -> None:
        super().__init__(_with_text_arrays(arrays))
        self.params = self._params(
            Params(self.lengthscale, self.outputscale, self.noise, self.mean, self.alpha, self.kernel)
        )

    def _params(self, hyp: Params) -> Any:
        return hyp

    def _dims(self) -> dict:
        """The sizes shown after B: [M], D."""
        return {"D": self.lengthscale.shape[1]}

    def _rounds(self) -> int:
        """Batched evaluation rounds in all."""
        raise NotImplementedError

    def _columns(self) -> dict:
        """Further summary columns: name -> (B,) cells."""
        return {}

    def _warnings(self) -> list[str]:
        """Lines summary() prints under its table."""
        return []

    def _npz_arrays(self) -> dict:
        """The arrays of to_npz: the params', then the fit's as f64."""
        arrays = self.params._npz_arrays()
        for name in (self._term, "log_prior", "objective", "status", "jitter", "iterations"):
            arrays[name] = np.asarray(getattr(self, name), dtype=np.float64)
        return arrays

    def to_npz(self, path: str | os.PathLike) -> None:
        save_npz(path, (self._host or self)._npz_arrays())

    def __repr__(self) -> str:
        if self._host is not None:
            return repr(self._host)
        dims = ", ".join(f"{k}={v}" for k, v in self._dims().items())
        return (
            f"{type(self).__name__}(kernel={self.kernel!r}, B={len(self.status)}, {dims}, "
            f"{self._shown}={_short(getattr(self, self._shown))}, status: {_status_counts(self.status)})"
        )

    def summary(self, max_rows: int | None = 50) -> str:
        """A table per member in natural units: outcome, objective, the data term, log prior,
        every hyperparameter, iterations (and the model's own columns)."""
        if self._host is not None:
            return self._host.summary(max_rows)
        b, d = self.lengthscale.shape
        extra = self._columns()
        headers = ["member", "outcome", "objective", self._term, "log_prior"] + _hyper_headers(
            d, self.alpha is not None
        )
        headers += ["iters", *extra]
        term = getattr(self, self._term)
        rows = []
        for m in range(b):
            row = [str(m), str(self.outcome[m]), _num(self.objective[m]), _num(term[m]), _num(self.log_prior[m])]
            row += _hyper_cells(self, m) + [str(self.iterations[m])] + [str(c[m]) for c in extra.values()]
            rows.append(row)
        converged = int(np.sum((self.status == 0) | (self.status == 1)))
        dims = ", ".join(f"{k} = {v}" for k, v in self._dims().items())
        head = (
            f"{type(self).__name__}: {b} GPs, {self.kernel} kernel, {dims}; converged {converged} of {b}"
            f" ({_status_counts(self.status)}); {self._rounds()} evaluation rounds"
        )
        return "\n".join([head, _table(headers, rows, max_rows), *self._warnings()])


class MllResult(_Objective):
    """The MAP objective at given hyperparameters, per member (as the CLI's mll output).

    Attributes
    ----------
    mll, log_prior, objective : (B,)
        Exact marginal log-likelihood (a total over the observed points), sum of log prior
        densities, and their sum.
    status : (B,) int
        0 ok, 1 ok with jitter, 3 failed (numbers NaN), 4 empty, 5 degenerate.
    jitter : (B,)
        Jitter added to each member's diagonal.
    grad_log_lengthscale : (B, D); grad_log_outputscale, grad_log_noise, grad_mean : (B,)
        Gradient of the objective with respect to log lengthscale, log outputscale, log noise
        and the mean.
    grad_log_alpha : (B,) or None
        For the rq kernel.
    """

    _fields = (
        "mll",
        "log_prior",
        "objective",
        "status",
        "jitter",
        "grad_log_lengthscale",
        "grad_log_outputscale",
        "grad_log_noise",
        "grad_mean",
    )
    _optional = ("grad_log_alpha",)
    _term = "mll"

    def _dims(self) -> dict:
        b, d = self.grad_log_lengthscale.shape
        return {"B": b, "D": d}


class Prediction(_Result):
    """Posterior at M test points per member; arrays are (B, M).

    Attributes
    ----------
    mean : (B, M)
        Posterior mean of f (and of y).
    var, var_y : (B, M)
        Posterior variance of f, and of y = f + noise.
    lower, upper : (B, M)
        mean -/+ 2 sd(y) (GPyTorch's confidence_region).
    status : (B,) int; jitter : (B,)
    samples : (S, B, M) or None
        Posterior samples of f, when asked for.
    covariance : (B, M, M) or None
        Posterior covariance of f, when asked for.
    """

    _fields = ("mean", "var", "var_y", "lower", "upper", "status", "jitter")
    _optional = ("samples", "covariance")

    def _arrays_text(self) -> str:
        """The arrays it holds, for repr."""
        arrays = "mean, var, var_y, lower, upper (B, M)"
        if self.samples is not None:
            arrays += f", samples {self.samples.shape}"
        if self.covariance is not None:
            arrays += f", covariance {self.covariance.shape}"
        return arrays

    def __repr__(self) -> str:
        if self._host is not None:
            return repr(self._host)
        b, m = self.mean.shape
        return f"Prediction(B={b}, M={m}: {self._arrays_text()}; status: {_status_counts(self.status)})"

    def summary(self, max_rows: int | None = 50) -> str:
        """A table per member: status, jitter, range of the mean, average and largest sd(y)."""
        if self._host is not None:
            return self._host.summary(max_rows)
        sd = np.sqrt(self.var_y)
        rows = [
            [
                str(b),
                STATUS_TEXT[self.status[b]],
                _num(self.jitter[b]),
                _num(np.min(self.mean[b])) if self.mean.shape[1] else "-",
                _num(np.max(self.mean[b])) if self.mean.shape[1] else "-",
                _num(np.mean(sd[b])) if self.mean.shape[1] else "-",
                _num(np.max(sd[b])) if self.mean.shape[1] else "-",
            ]
            for b in range(self.mean.shape[0])
        ]
        b, m = self.mean.shape
        head = f"Prediction: {b} members at {m} points; {_status_counts(self.status)}"
        headers = ["member", "status", "jitter", "min mean", "max mean", "mean sd(y)", "max sd(y)"]
        return head + "\n" + _table(headers, rows, max_rows)


class FitResult(_Fit):
    """A fit, per GP (restarts folded in: the best kept). Arrays are (B,) unless noted.

    Attributes
    ----------
    lengthscale : (B, D); outputscale, noise, mean : (B,); alpha : (B,) or None
        Fitted hyperparameters in the data's units (NaN for a failed or empty member).
    mll, log_prior, objective : (B,)
        At the fitted point; objective = mll + log_prior.
    status : (B,) int
        0/1 converged (1: with jitter), 2 not converged (see reason), 3 failed, 4 empty,
        5 degenerate.
    reason : (B,) str
        Why each member's optimiser stopped ("converged", "iteration limit", ...).
    outcome : (B,) str
        The status and reason in words, as summary() prints them.
    jitter : (B,); iterations : (B,) int
        Jitter at the fitted point; optimiser iterations of the kept run.
    restart : (B,) int
        Which start was kept (0 = the initial point).
    reached_best : (B,) int
        How many of the GP's starts ended at the kept optimum (0 for an empty or failed member).
    starts : int
        Starts per GP (restarts + 1). summary() warns where starts > 1 and reached_best == 1.
    rounds : int
        Batched evaluation rounds in all.
    kernel : str
    params : Params
        The fitted hyperparameters, ready for predict/mll or as another fit's init.
    """

    _fields = (
        "kernel",
        "lengthscale",
        "outputscale",
        "noise",
        "mean",
        "mll",
        "log_prior",
        "objective",
        "status",
        "reason",
        "outcome",
        "jitter",
        "iterations",
        "restart",
        "reached_best",
        "starts",
        "rounds",
    )
    _optional = ("alpha",)

    _term = "mll"

    def to_npz(self, path: str | os.PathLike) -> None:
        """Writes the fit as the command line's F.npz: kernel (a 0-d string), log_lengthscale
        (B, D), log_outputscale, log_noise, mean, [log_alpha], mll, log_prior, objective, status,
        jitter, iterations (B,), all f64 but the kernel. ``batchgp show`` prints it,
        ``batchgp predict --params`` and :meth:`Params.from_log` read it back; with
        ``batchgp.dask``, one call per shard keeps a job's results out of one machine's memory.
        """
        super().to_npz(path)

    def _rounds(self) -> int:
        return self.rounds

    def _columns(self) -> dict:
        return {"restart": self.restart} if np.any(self.restart) else {}

    def _warnings(self) -> list[str]:
        lone = np.flatnonzero(np.asarray(self.reached_best) == 1) if self.starts > 1 else []
        if len(lone) == 0:
            return []
        shown = ", ".join(str(m) for m in lone[:20]) + (", ..." if len(lone) > 20 else "")
        return [
            f"warning: {len(lone)} member(s) ({shown}): only 1 of {self.starts} starts reached the kept"
            " optimum (the others ended lower); more restarts may find a better one"
        ]


class ElboResult(_Objective):
    """The SVGP objective at given parameters, per member (as the CLI's ``batchgp elbo`` output).

    Attributes
    ----------
    elbo, log_prior, objective : (B,)
        Evidence lower bound (docs/design.md section 11, on the full data), sum of log prior
        densities of the hyperparameters, and their sum.
    status : (B,) int
        0 ok, 1 ok with jitter (on k(Z, Z)), 3 failed (numbers NaN), 4 empty.
    jitter : (B,)
        Absolute jitter added to the diagonal of k(Z, Z).
    grad_z : (B, M, D); grad_q_mu : (B, M); grad_q_sqrt : (B, M, M)
        Gradient of the objective with respect to the inducing inputs and the whitened
        variational parameters (q_sqrt: lower triangle, zeros above).
    grad_log_lengthscale : (B, D); grad_log_outputscale, grad_log_noise, grad_mean : (B,)
        With respect to log lengthscale, log outputscale, log noise and the mean.
    grad_log_alpha : (B,) or None
        For the rq kernel.
    """

    _fields = (
        "elbo",
        "log_prior",
        "objective",
        "status",
        "jitter",
        "grad_z",
        "grad_q_mu",
        "grad_q_sqrt",
        "grad_log_lengthscale",
        "grad_log_outputscale",
        "grad_log_noise",
        "grad_mean",
    )
    _optional = ("grad_log_alpha",)
    _term = "elbo"

    def _dims(self) -> dict:
        b, m, d = self.grad_z.shape
        return {"B": b, "M": m, "D": d}


class SvgpResult(_Fit):
    """An SVGP fit, per member. Arrays are (B,) unless noted.

    Attributes
    ----------
    z : (B, M, D); q_mu : (B, M); q_sqrt : (B, M, M)
        Fitted inducing inputs and whitened variational parameters (q_sqrt lower triangular).
    lengthscale : (B, D); outputscale, noise, mean : (B,); alpha : (B,) or None
        Fitted hyperparameters in the data's units (NaN for a failed or empty member).
    elbo, log_prior, objective : (B,)
        At the fitted point, on the full data; objective = elbo + log_prior.
    status : (B,) int
        0/1 converged (1: with jitter), 2 stopped by the step limit (see reason), 3 failed,
        4 empty.
    reason, outcome : (B,) str
        Why each member's optimiser stopped; the status and reason in words.
    jitter : (B,); iterations : (B,) int
        Jitter on k(Z, Z) at the fitted point; accepted optimiser steps.
    loss : (T, B)
        The value minimised, -(elbo + log prior) (on that step's mini-batch), at every batched
        evaluation round; NaN once a member has stopped. Adam without early convergence:
        T = steps + 1 (the start, then one row per step).
    kernel : str
    params : SvgpParams
        The fitted parameters, ready for :func:`batchgp.svgp.predict` / :func:`batchgp.svgp.elbo`
        or as another fit's ``init``.
    """

    _fields = (
        "kernel",
        "z",
        "q_mu",
        "q_sqrt",
        "lengthscale",
        "outputscale",
        "noise",
        "mean",
        "elbo",
        "log_prior",
        "objective",
        "status",
        "reason",
        "outcome",
        "jitter",
        "iterations",
        "loss",
    )
    _optional = ("alpha",)

    _term = "elbo"
    _shown = "elbo"

    def _params(self, hyp: Params) -> SvgpParams:
        return SvgpParams(self.z, self.q_mu, self.q_sqrt, hyperparameters=hyp)

    def _dims(self) -> dict:
        return {"M": self.z.shape[1], "D": self.z.shape[2]}

    def _rounds(self) -> int:
        return self.loss.shape[0]

    def _npz_arrays(self) -> dict:
        return {**super()._npz_arrays(), "loss": np.asarray(self.loss, dtype=np.float64)}

    def to_npz(self, path: str | os.PathLike) -> None:
        """Writes the fit as ``batchgp fit --model svgp`` does: the S.npz arrays (see
        :meth:`SvgpParams.to_npz`) plus elbo, log_prior, objective, status, jitter, iterations
        (B,) and loss (T, B), all f64 but the kernel."""
        super().to_npz(path)
