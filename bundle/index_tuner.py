"""Pick the index kind by measurement, not by catalog size alone: build each candidate kind, tune its
search breadth to the recall target on held-out queries (``VectorIndex.tune``: exact search is the
truth), time single queries, and keep the fastest that meets the target. Every candidate tried is
recorded (kind, parameters, recall, QPS, bytes, build seconds) in the chosen index's
``info.extra["candidates"]``, which the bundle manifest carries.

Which kind wins depends on the data: on a 64-d Gaussian mixture at 1M items IVF-Flat beat the
fast-scan codes that the size rule picked (issue 18). Candidates by default: exact search alone up
to ``FLAT_MAX`` items (it is exact and fast there), else IVF-Flat, IVF fast-scan + re-rank and HNSW
(IVF-PQ only when the raw vectors exceed the memory budget). Every kind keeps the same filtered
search guarantee (k allowed results: widen, then exact).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from bundle.index import FLAT_MAX, VectorIndex

log = logging.getLogger(__name__)


def candidate_kinds(n: int, dim: int, memory_budget_bytes: int = 8 << 30) -> tuple[str, ...]:
    if n <= FLAT_MAX:
        return ("flat",)
    if n * dim * 4 > memory_budget_bytes:
        return ("ivfpq",)
    return ("ivfflat", "ivf", "hnsw")


def index_bytes(vi: VectorIndex) -> int:
    """Serialized index + the raw vectors the service keeps beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        vi.save(Path(tmp) / "i.faiss")
        return (Path(tmp) / "i.faiss").stat().st_size + vi.vectors.nbytes


def tune_kinds(vectors: np.ndarray, queries: np.ndarray, *, target_recall: float = 0.95, k: int = 100,
               kinds: tuple[str, ...] | None = None, budget_s: float = 600.0, seed: int = 0,
               timing_queries: int = 300, built: dict[str, VectorIndex] | None = None) -> VectorIndex:
    """The fastest candidate meeting ``target_recall`` (or, if none does, the one with the best recall);
    ``budget_s`` bounds the build and tuning time: once spent, the remaining kinds are skipped (logged
    and recorded as such). ``built``: receives every candidate index (benchmarks compare them)."""
    n, d = vectors.shape
    kinds = kinds or candidate_kinds(n, d)
    t_start = time.perf_counter()
    tried: list[dict] = []
    best: tuple[bool, float, VectorIndex, float] | None = None
    k = min(k, n)
    for kind in kinds:
        if best is not None and time.perf_counter() - t_start > budget_s:
            tried.append({"kind": kind, "skipped": f"build budget of {budget_s:.0f} s spent"})
            log.warning("index tuning: %s skipped (budget %.0f s spent)", kind, budget_s)
            continue
        t0 = time.perf_counter()
        vi = VectorIndex.build(vectors, kind, seed=seed)
        vi.tune(queries, target_recall=target_recall, k=k)
        qps = vi.single_query_qps(queries[:timing_queries], k)
        rec = {"kind": kind, "nprobe": vi.info.nprobe, "k_factor": vi.info.k_factor, "nlist": vi.info.nlist,
               "recall": round(vi.info.recall_at_k, 4), "qps": round(qps, 1), "bytes": index_bytes(vi),
               "build_s": round(time.perf_counter() - t0, 1)}
        tried.append(rec)
        if built is not None:
            built[kind] = vi
        log.info("index candidate %s", rec)
        meets = vi.info.recall_at_k >= target_recall
        score = qps if meets else vi.info.recall_at_k
        if best is None or (meets, score) > (best[0], best[1]):
            best = (meets, score, vi, qps)
    assert best is not None
    chosen = best[2]
    chosen.info.qps_single = best[3]
    chosen.info.extra["candidates"] = tried
    log.info("index: %s chosen of %s", chosen.info.kind, [t["kind"] for t in tried])
    return chosen
