"""FAISS on GPUs for ``VectorIndex``: the copy of an index that lives on the devices, and filtered
search without ID selectors.

GPU indexes take no ``IDSelector``, so a filtered search asks the GPU for more than k results
(``k / share of rows allowed``, with a margin), drops the ones not allowed, and asks again with a
doubled depth for any query still short, up to the GPU's largest k (2,048); queries still short
after that (a filter so tight that its items are not among the top 2,048) go to exact search over
the allowed rows on the CPU, as the CPU path does. Removed rows are one more thing not allowed.

Kinds: ``flat`` and ``ivfflat`` move as they are (``index_cpu_to_gpu(s)``); ``ivf`` and ``ivfpq``
(4-bit fast-scan PQ, which has no GPU implementation) are replaced on the GPU by exact search over
the raw vectors, which a GPU does at recall 1.0 faster than the CPU's approximate one. Several GPUs
shard the index (each holds 1/n of the rows; faiss merges the per-shard top-k).

Everything except ``to_gpu`` is plain numpy, so the over-fetch logic is tested on the CPU through
``cpu_stand_in`` (the same index with selectors unused), and ``to_gpu`` is marked ``gpu`` in tests.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import faiss
import numpy as np

log = logging.getLogger(__name__)

GPU_MAX_K = 2048  # faiss GPU's largest k (and nprobe) per search
SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # (queries, k) -> (D, I)


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu, or a GPU build on a host without a visible device."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _movable(index: faiss.Index, kind: str, vectors: np.ndarray) -> faiss.Index:
    """The CPU index whose GPU copy serves ``kind``: itself for flat / ivfflat (an IDMap's inner
    index: ids are rows, which a flat index's positions already are), exact flat otherwise."""
    if kind == "flat":
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
        if inner.ntotal == len(vectors):
            return inner
    if kind == "ivfflat":
        return index
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return flat


def to_gpu(index: faiss.Index, kind: str, vectors: np.ndarray, ngpu: int | None = None) -> faiss.Index:
    """A GPU copy of ``index`` (ids = catalog rows), sharded over ``ngpu`` GPUs (default: all)."""
    n = gpu_count() if ngpu is None else ngpu
    if n < 1:
        raise RuntimeError("FAISS sees no GPU (faiss-cpu, or no visible device)")
    cpu = _movable(index, kind, vectors)
    if n == 1:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
    co = faiss.GpuMultipleClonerOptions()
    co.shard = True  # each GPU holds a slice of the rows; results merged by faiss
    return faiss.index_cpu_to_all_gpus(cpu, co=co, ngpu=n)


def cpu_stand_in(index: faiss.Index, kind: str, vectors: np.ndarray) -> faiss.Index:
    """A copy of what ``to_gpu`` would copy, left on the CPU: exercises the GPU search path without a GPU."""
    return faiss.clone_index(_movable(index, kind, vectors))


def overfetch_search(search: SearchFn, queries: np.ndarray, k: int, ok: np.ndarray, max_k: int = GPU_MAX_K
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k among the rows where ``ok`` (bool per row) using a ``search`` that cannot filter.

    Returns (D, I, short): results padded with (-inf, -1), and which queries got fewer than
    min(k, #ok) results even at depth ``max_k`` (the caller finishes those exactly).
    """
    nq, n_ok = len(queries), int(ok.sum())
    want = min(k, n_ok)
    D = np.full((nq, k), -np.inf, np.float32)
    I = np.full((nq, k), -1, np.int64)
    todo = np.arange(nq)
    depth = min(max_k, max(k, math.ceil(1.2 * k * len(ok) / max(n_ok, 1))))
    while len(todo):
        d, i = search(queries[todo], depth)  # (q, depth)
        keep = (i >= 0) & ok[np.maximum(i, 0)]
        # Stable: allowed results keep their rank order; the first k of each row are the answer.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        got = np.take_along_axis(keep, order, 1)
        D[todo] = np.where(got, np.take_along_axis(d, order, 1), -np.inf)
        I[todo] = np.where(got, np.take_along_axis(i, order, 1), -1)
        full = got[:, :want].all(1) if want else np.ones(len(todo), bool)
        if depth >= max_k or full.all():
            todo = todo[~full]
            break
        todo, depth = todo[~full], min(max_k, depth * 2)
    short = np.zeros(nq, bool)
    short[todo] = True
    return D, I, short
