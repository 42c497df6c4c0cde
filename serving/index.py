"""FAISS retrieval index: inner product on unit vectors (the towers' training score), the kind
chosen by catalog size, search parameters tuned to a recall target against exact search, filtered
search that always returns k allowed items, and add / hide / remove without a rebuild.

Small functions, numpy in and out (faiss ``contrib`` style). No torch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np

log = logging.getLogger(__name__)

FLAT_MAX = 50_000  # exact search is fast enough below this many items


@dataclass
class IndexInfo:
    kind: str  # flat | ivf | ivfpq
    n: int
    dim: int
    nlist: int = 0
    pq_m: int = 0
    nprobe: int = 0
    target_recall: float = 0.0
    recall_at_k: float = 1.0  # measured against exact search on held-out queries
    k: int = 100
    qps_single: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_kind(n: int, dim: int, memory_budget_bytes: int = 8 << 30) -> str:
    """flat below FLAT_MAX items; IVF-Flat while the raw vectors fit the budget; IVF-PQ beyond."""
    if n <= FLAT_MAX:
        return "flat"
    return "ivf" if n * dim * 4 <= memory_budget_bytes else "ivfpq"


def default_nlist(n: int) -> int:
    """About 4·sqrt(n) lists, a power of two (1M vectors -> 4096)."""
    return int(2 ** round(np.log2(max(4 * np.sqrt(n), 16))))


def build(vectors: np.ndarray, kind: str = "auto", *, nlist: int | None = None, pq_m: int = 16,
          train_sample: int = 200_000, seed: int = 0) -> tuple[faiss.Index, IndexInfo]:
    """Index over ``vectors`` (N, D) float32, ids 0..N-1, metric = inner product."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    kind = choose_kind(n, d) if kind == "auto" else kind
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        index.add_with_ids(x, np.arange(n, dtype=np.int64))
        return index, IndexInfo("flat", n, d)
    nl = nlist or default_nlist(n)
    quantizer = faiss.IndexFlatIP(d)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, nl, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivfpq":
        index = faiss.IndexIVFPQ(quantizer, d, nl, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, min(n, max(train_sample, 40 * nl)), replace=False)]
    index.cp.seed = seed
    t = time.perf_counter()
    index.train(sample)
    index.add_with_ids(x, np.arange(n, dtype=np.int64))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct/remove by id, still add_with_ids
    log.info("built %s nlist=%d over %d x %d in %.1f s", kind, nl, n, d, time.perf_counter() - t)
    return index, IndexInfo(kind, n, d, nlist=nl, pq_m=pq_m if kind == "ivfpq" else 0, nprobe=1)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k with faiss (BLAS for every batch size: faster here even for 1 query)."""
    old = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 1
    try:
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    finally:
        faiss.cvar.distance_compute_blas_threshold = old


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / k per query (rows of ids; -1 never matches)."""
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / k for f, t in zip(found, truth, strict=True)]))


def _params(index: faiss.Index, nprobe: int, selector: faiss.IDSelector | None = None):
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def search(index: faiss.Index, info: IndexInfo, queries: np.ndarray, k: int, *,
           allowed: np.ndarray | None = None, vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) per query. ``allowed`` (bool per id) filters before ranking (IDSelector).

    IVF visits only ``nprobe`` lists, so a tight filter can leave fewer than k allowed items there:
    the search then widens nprobe (doubling) and, past all lists, falls back to exact search over
    the allowed items (needs ``vectors``), so every row has min(k, #allowed) results.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    sel = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little")) if allowed is not None else None
    nprobe = max(info.nprobe, 1)
    want = k if allowed is None else min(k, int(allowed.sum()))
    while True:
        D, I = index.search(q, k, params=_params(index, nprobe, sel))
        short = (I[:, :want] < 0).any(1) if want else np.zeros(len(q), bool)
        if not short.any() or not isinstance(index, faiss.IndexIVF) or nprobe >= info.nlist:
            break
        nprobe = min(nprobe * 2, info.nlist)
    if short.any() and vectors is not None and allowed is not None:
        ids = np.flatnonzero(allowed)
        d2, i2 = exact_search(vectors[ids], q[short], k)
        D[short], I[short] = d2, np.where(i2 >= 0, ids[np.maximum(i2, 0)], -1)
    return D, I


def tune_nprobe(index: faiss.Index, info: IndexInfo, vectors: np.ndarray, queries: np.ndarray, *,
                target_recall: float = 0.95, k: int = 100) -> IndexInfo:
    """Smallest nprobe (powers of two, then bisection) whose recall@k against exact search on
    ``queries`` reaches the target; records recall and single-query QPS in ``info``."""
    _, truth = exact_search(vectors, queries, k)
    if not isinstance(index, faiss.IndexIVF):
        info.recall_at_k = recall_at_k(index.search(queries, k)[1], truth)
    else:
        def rec(p: int) -> float:
            return recall_at_k(index.search(queries, k, params=_params(index, p))[1], truth)

        lo, hi = 0, 1
        while hi < info.nlist and rec(hi) < target_recall:
            lo, hi = hi, hi * 2
        hi = min(hi, info.nlist)
        while hi - lo > 1:  # recall is monotone in nprobe: bisect between the last miss and the hit
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if rec(mid) >= target_recall else (mid, hi)
        info.nprobe = hi
        info.recall_at_k = rec(hi)
    info.target_recall, info.k = target_recall, k
    info.qps_single = single_query_qps(index, info, queries[:200], k)
    log.info("tuned %s: nprobe=%d recall@%d=%.3f (target %.2f), %.0f single-query QPS", info.kind, info.nprobe, k,
             info.recall_at_k, target_recall, info.qps_single)
    return info


def single_query_qps(index: faiss.Index, info: IndexInfo, queries: np.ndarray, k: int) -> float:
    params = _params(index, info.nprobe)
    t = time.perf_counter()
    for q in queries:
        index.search(q[None], k, params=params)
    return len(queries) / (time.perf_counter() - t)


def add_items(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Insert new items (e.g. a product added through the admin API) without a rebuild."""
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))


def remove_items(index: faiss.Index, ids: np.ndarray) -> int:
    """Delete items for good; hiding (out of stock) is a filter instead, see ``search(allowed=...)``."""
    return int(index.remove_ids(np.asarray(ids, dtype=np.int64)))
