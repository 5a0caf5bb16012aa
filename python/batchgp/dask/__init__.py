"""Batches that outgrow one machine: batchgp on Dask (docs/design.md section 13).

A batch of independent GPs splits along its batch axis: each chunk of members is one task that
runs the in-process call (:func:`batchgp.fit`, :func:`batchgp.mll`, :func:`batchgp.predict`) with
the GIL released, on the active ``dask.distributed`` Client when there is one, else on dask's
default scheduler. The results are identical, member for member, to the in-process call on the
whole batch.

    >>> import dask.array as da, batchgp.dask
    >>> x = da.from_array(x_np, chunks=(10_000, -1, -1))      # (B, N, D), chunked along B only
    >>> y = da.from_array(y_np, chunks=(10_000, -1))          # (B, N), chunked like x
    >>> r = batchgp.dask.fit(x, y, priors={"noise": batchgp.LogNormal(-4.0, 1.0)})   # FitResult
    >>> p = batchgp.dask.predict(x, y, r.params, x_test)      # Prediction of dask arrays
    >>> p.mean[:5].compute()

Arrays
------
x is a dask array (B, N, D) chunked along axis 0 only, or an (N, D) array (numpy or dask)
shared by every member. y (B, N), mask (B, N), yvar (B, N) and per-member test points
x_test (B, M, D) are chunked like x along axis 0 (when x is shared, the first dask array among
y, mask and yvar sets the chunks). A numpy array among them is split along those chunks; a dask
array chunked differently, or chunked along any other axis, is rejected with a
:class:`batchgp.BatchGPError` that says how to rechunk it.

Models
------
The exact GP only: :func:`fit` refuses the SVGP's options (``model="svgp"``, ``num_inducing``,
``z``, ``batch_size``, an SvgpParams ``init``) with a :class:`batchgp.BatchGPError` before any
task runs, and :func:`mll` and :func:`predict` take a Params.

What is split per chunk
-----------------------
Every per-member input follows its members: the data, ``init`` and ``params`` (sliced rows),
priors whose parameters are per member (a list of B numbers, or B lists of D numbers for the
lengthscale; numbers and per-dimension lists are shared), and per-member test points. Restarts
draw from one random stream per member, (seed, member index in the whole batch), so they are
the same whichever chunk a member is in when batchgp.fit can be told the chunk's first member
(see :data:`SUPPORTS_FIRST_MEMBER`).

What is assembled
-----------------
Per-member arrays are concatenated in member order, whatever order the tasks finished in and
however often dask re-ran a task whose worker was lost, so no member is lost or duplicated.
``FitResult.rounds`` (a count over the batch) is the largest over the chunks, which is the
whole batch's count when restarts = 0 (a member's path does not depend on the others). A
rejected request raises the BatchGPError of the chunk that rejected it, its member indices
counted in the whole batch.

The package's modules, one concern each: ``_chunks`` (the data's checks and the tasks' member
ranges), ``_members`` (per-member options sliced to a chunk), ``_tasks`` (what runs on the
workers, and the assembly of their results), ``_fit`` (:func:`fit`, :func:`mll`),
``_predict`` (:func:`predict`, :class:`LazyPrediction`) and ``_files`` (:func:`from_npz`).
"""

from __future__ import annotations

try:
    import dask
    import dask.array  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "batchgp.dask needs dask: pip install 'dask[array]' (and 'dask[distributed]' for a cluster)"
    ) from e

MERGE_BELOW: int = 64
"""Chunks of fewer members than this are merged with their neighbours into one task by default:
a task costs dask about a millisecond of scheduling, more than fitting a few small GPs."""

from ._chunks import _plan as _plan
from ._files import from_npz
from ._fit import fit, mll
from ._predict import LazyPrediction, predict
from ._tasks import _PREDICT_FIRST_MEMBER as _PREDICT_FIRST_MEMBER
from ._tasks import SUPPORTS_FIRST_MEMBER

__all__ = ["SUPPORTS_FIRST_MEMBER", "LazyPrediction", "fit", "from_npz", "mll", "predict"]
