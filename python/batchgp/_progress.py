"""Fit progress for ``progress=True``: a tqdm bar when tqdm is installed, else plain lines on
stderr. The extension calls ``start(total)`` and ``update(iteration, running, converged, total)``
(at most ten times a second, with the GIL briefly re-acquired); :func:`run_fit` calls ``close``."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TypeVar

import numpy as np

R = TypeVar("R")


class _Lines:
    """One line on stderr at most every second, and a closing line."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._last = 0.0

    def start(self, total: int) -> None:
        print(f"batchgp fit: {total} runs", file=sys.stderr, flush=True)

    def update(self, iteration: int, running: int, converged: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            print(
                f"batchgp fit: round {iteration}, {total - running} of {total} runs finished ({converged} converged)",
                file=sys.stderr,
                flush=True,
            )

    def close(self, done: str | None) -> None:
        if done is not None:
            print(f"batchgp fit: {done} in {time.monotonic() - self._t0:.2f} s", file=sys.stderr, flush=True)


class _Tqdm:
    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None

    def start(self, total: int) -> None:
        self._bar = self._tqdm(total=total, desc="batchgp fit", unit="run", leave=True)

    def update(self, iteration: int, running: int, converged: int, total: int) -> None:
        if self._bar is not None:
            self._bar.n = total - running
            self._bar.set_postfix_str(f"round {iteration}, converged {converged}", refresh=False)
            self._bar.refresh()

    def close(self, done: str | None) -> None:
        if self._bar is not None:
            if done is not None:
                self._bar.n = self._bar.total
                self._bar.set_postfix_str(done, refresh=False)
            self._bar.close()


def reporter(progress: Any) -> Any | None:
    """None for progress=False, else a tqdm bar or the plain-line reporter."""
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Lines()
    return _Tqdm(tqdm)


def run_fit(progress: Any, call: Callable[[Any], dict], wrap: Callable[[dict], R]) -> R:
    """A fit with progress: ``call(reporter)`` runs the extension's fit, ``wrap`` makes its
    result (which has ``status``); the reporter, if any, is closed with the count of converged
    members, or without one when the fit raised."""
    rep = reporter(progress)
    done = None
    try:
        result = wrap(call(rep))
        converged = int(np.sum(result.status <= 1))  # type: ignore[attr-defined]
        done = f"converged {converged} of {len(result.status)} members"  # type: ignore[attr-defined]
    finally:
        if rep is not None:
            rep.close(done)
    return result
