"""FAISS retrieval index: inner product on unit vectors (the towers' training score), the kind
chosen by catalog size, search parameters tuned to a recall target against exact search, filtered
search that always returns k allowed items, and add / hide / remove without a rebuild.

Kinds (``choose_kind``):
- ``flat``: exact ``IndexFlatIP`` up to FLAT_MAX items.
- ``ivfflat``: IVF over the raw vectors, up to IVFFLAT_MAX items. While the vectors stay in the
  CPU caches, scanning them directly is cheaper than codes + re-rank: on the 70k-item fashion-shop
  catalog, tuned to the same recall, ``ivf`` takes 1.18x as long per query
  (bench/index_kinds_bench.py, docs/benchmarks.md).
- ``ivf``: IVF with 4-bit fast-scan PQ codes (one sub-quantizer per dimension) whose top
  ``k * k_factor`` candidates are re-scored exactly from the raw vectors. Scanning 32-byte codes
  instead of 256-byte floats is what lets it beat exact search ~30x+ at recall@100 0.95 on 1M x 64;
  plain IVF-Flat is memory-bound at ~24x there (docs/benchmarks.md).
- ``ivfpq``: the same codes without the raw vectors, when those do not fit the memory budget.
- ``hnsw``: an HNSW32 graph over the raw vectors (``nprobe`` is its efSearch); it cannot delete, so a
  removed row is filtered by the live mask.

``choose_kind`` is the size rule; bundles pick by measurement instead (``bundle/index_tuner.py``:
every candidate kind built, tuned and timed, the fastest at the recall target kept).

Ids are catalog rows: ``vectors[i]`` is item row i. Small functions and one class, numpy in and out.
No torch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from bundle import gpu_index

log = logging.getLogger(__name__)

FLAT_MAX = 50_000  # exact search is fast enough below this many items
IVFFLAT_MAX = 250_000  # raw float vectors scanned directly up to here (64 MB at 64 dims)
HNSW_M = 32  # graph degree: 32 neighbours per node (M * 2 * 4 bytes of links per item at the base layer)
HNSW_MAX_EF = 4096  # the widest efSearch a filtered search widens to before exact search


@dataclass
class IndexInfo:
    kind: str  # flat | ivfflat | ivf | ivfpq | hnsw
    n: int
    dim: int
    nlist: int = 0
    nprobe: int = 0  # IVF lists visited; for hnsw, efSearch
    k_factor: int = 4  # ivf: candidates re-scored exactly per result
    target_recall: float = 0.0
    recall_at_k: float = 1.0  # measured against exact search on held-out queries
    k: int = 100
    qps_single: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_kind(n: int, dim: int, memory_budget_bytes: int = 8 << 30) -> str:
    """flat up to FLAT_MAX items, IVF-Flat up to IVFFLAT_MAX, then IVF fast-scan codes + exact re-rank
    while the raw vectors fit the budget, IVF-PQ beyond."""
    if n <= FLAT_MAX:
        return "flat"
    if n <= IVFFLAT_MAX:
        return "ivfflat"
    return "ivf" if n * dim * 4 <= memory_budget_bytes else "ivfpq"


def default_nlist(n: int) -> int:
    """About 4·sqrt(n) lists, a power of two (1M vectors -> 4096)."""
    return int(2 ** round(np.log2(max(4 * np.sqrt(n), 16))))


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k with faiss's BLAS path (the fast one for batches; see docs)."""
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


class VectorIndex:
    """A faiss index over catalog rows plus what search needs around it: the raw vectors (exact
    re-rank and the exact fallback for tight filters) and which rows are live (not removed)."""

    def __init__(self, index: faiss.Index, info: IndexInfo, vectors: np.ndarray, live: np.ndarray | None = None):
        self.index, self.info = index, info
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D)
        self.live = np.ones(len(vectors), bool) if live is None else live
        self.n_live = int(self.live.sum())
        self.accel: faiss.Index | None = None  # the GPU copy searches go to (bundle/gpu_index.py)
        self.mapped = False  # the faiss structures are views of the index file (``load(mmap=True)``)
        self._accel_args: tuple | None = None

    def use_gpu(self, ngpu: int | None = None, *, stand_in: bool = False) -> str:
        """Serve searches from a copy on the GPUs (``stand_in``: the same search path on the CPU, for
        tests). Returns what now serves, for the log."""
        self._accel_args = (ngpu, stand_in)
        make = gpu_index.cpu_stand_in if stand_in else gpu_index.to_gpu
        self.accel = make(self.index, self.info.kind, self.vectors, **({} if stand_in else {"ngpu": ngpu}))
        if self.info.kind == "ivfflat":  # the tuned nprobe; other kinds are exact there
            space = faiss.ParameterSpace() if stand_in else faiss.GpuParameterSpace()
            space.set_index_parameter(self.accel, "nprobe", min(self.info.nprobe, gpu_index.GPU_MAX_K))
        where = "the CPU (GPU stand-in)" if stand_in else f"{ngpu or gpu_index.gpu_count()} GPU(s)"
        return f"{self.info.kind} on {where}"

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", *, nlist: int | None = None,
              train_sample: int = 200_000, seed: int = 0) -> VectorIndex:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = x.shape
        kind = choose_kind(n, d) if kind == "auto" else kind
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
            index.add_with_ids(x, np.arange(n, dtype=np.int64))
            return cls(index, IndexInfo("flat", n, d), x)
        if kind == "hnsw":  # a graph: no training; positions are row ids; removal is the live mask
            t = time.perf_counter()
            index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 64
            index.add(x)
            log.info("built hnsw M=%d over %d x %d in %.1f s", HNSW_M, n, d, time.perf_counter() - t)
            return cls(index, IndexInfo("hnsw", n, d, nlist=HNSW_MAX_EF, nprobe=16), x)
        if kind not in ("ivfflat", "ivf", "ivfpq"):
            raise ValueError(f"unknown index kind {kind!r}")
        nl = nlist or default_nlist(n)
        rng = np.random.default_rng(seed)
        sample = x[rng.choice(n, min(n, max(train_sample, 40 * nl)), replace=False)]
        t = time.perf_counter()
        if kind == "ivfflat":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nl, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(sample)
            index.add(x)
            log.info("built ivfflat nlist=%d over %d x %d in %.1f s", nl, n, d, time.perf_counter() - t)
            return cls(index, IndexInfo(kind, n, d, nlist=nl, nprobe=1), x)
        # 4-bit PQ codes: one sub-quantizer per dimension when re-ranking (codes only pick candidates),
        # one per two dimensions when the codes are all we keep.
        m = d if kind == "ivf" else max(d // 2, 2)
        ivf = faiss.index_factory(d, f"IVF{nl},PQ{m}x4fs", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(ivf).cp.seed = seed
        ivf.train(sample)
        # ivf: IndexRefineFlat keeps the raw vectors (position = row id) and re-scores the codes'
        # top k * k_factor exactly, in C++; removal deletes from the codes only, so a removed row is
        # never a candidate again.
        index = faiss.IndexRefineFlat(ivf) if kind == "ivf" else ivf
        index.add(x)
        log.info("built %s nlist=%d over %d x %d in %.1f s", kind, nl, n, d, time.perf_counter() - t)
        return cls(index, IndexInfo(kind, n, d, nlist=nl, nprobe=1), x)

    # -- search ---------------------------------------------------------------------------------

    def _params(self, nprobe: int, sel: faiss.IDSelector | None = None) -> faiss.SearchParameters | None:
        if self.info.kind == "flat":
            return faiss.SearchParameters(sel=sel) if sel is not None else None
        if self.info.kind == "hnsw":  # nprobe is the search breadth, efSearch
            return faiss.SearchParametersHNSW(efSearch=nprobe, sel=sel)
        ivf = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        if self.info.kind == "ivf":
            return faiss.IndexRefineSearchParameters(k_factor=self.info.k_factor, base_index_params=ivf)
        return ivf

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ``allowed`` (bool per row) filters before ranking.

        IVF visits only ``nprobe`` lists, so a tight filter can leave fewer than k allowed items
        there: the search then widens nprobe (doubling) and finally falls back to exact search over
        the allowed live rows, so every row of the answer has min(k, #allowed) results.
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.accel is not None:
            return self._search_accel(q, k, self.live if allowed is None else np.asarray(allowed, bool) & self.live)
        if allowed is None and (self.n_live == len(self.live) or self.info.kind != "hnsw"):
            ok, sel, want = self.live, None, min(k, self.n_live)  # removed rows are gone from the codes
        else:  # a filter, or removed rows in a graph that cannot delete them
            ok = (self.live if allowed is None else np.asarray(allowed, bool)) & self.live
            sel, want = faiss.IDSelectorBitmap(np.packbits(ok, bitorder="little")), min(k, int(ok.sum()))
        probe = max(nprobe or self.info.nprobe, 1)
        D, I = self.index.search(q, k, params=self._params(probe, sel))
        short = (I[:, :want] < 0).any(1)
        # Widen only the queries that came back short, so a query's answer never depends on the others
        # in its batch (and the tuner's recall is what a single query gets).
        while short.any() and self.info.kind != "flat" and probe < self.info.nlist:
            probe = min(probe * 2, self.info.nlist)
            rows = np.flatnonzero(short)
            D[rows], I[rows] = self.index.search(q[rows], k, params=self._params(probe, sel))
            short[rows] = (I[rows, :want] < 0).any(1)
        if short.any() and self.info.kind != "ivfpq":
            self._exact_refill(q, k, ok, short, D, I)
        return D, I

    def _search_accel(self, q: np.ndarray, k: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The GPU copy takes no selector: over-fetch and refill, exact on the CPU for what stays short."""
        D, I, short = gpu_index.overfetch_search(lambda x, depth: self.accel.search(x, depth), q, k, ok)
        if short.any():
            self._exact_refill(q, k, ok, short, D, I)
        return D, I

    def _exact_refill(self, q: np.ndarray, k: int, ok: np.ndarray, short: np.ndarray, D: np.ndarray,
                      I: np.ndarray) -> None:
        """The queries still short after widening: exact search over the allowed rows, in place."""
        ids = np.flatnonzero(ok)
        d2, i2 = exact_search(self.vectors[ids], q[short], k)
        D[short], I[short] = d2, np.where(i2 >= 0, ids[np.maximum(i2, 0)], -1)

    # -- tuning ---------------------------------------------------------------------------------

    def tune(self, queries: np.ndarray, *, target_recall: float = 0.95, k: int = 100,
             k_factors: tuple[int, ...] = (4, 8, 16, 32)) -> IndexInfo:
        """Fastest (k_factor, nprobe) whose recall@k against exact search on ``queries`` reaches the
        target: for each re-rank depth, the smallest nprobe (doubling, then bisection); then the pair
        with the best single-query QPS. Records recall and QPS in ``info``."""
        live = np.flatnonzero(self.live)
        _, t = exact_search(self.vectors[live], queries, k)
        truth = live[t]

        def rec(p: int) -> float:
            return recall_at_k(self.search(queries, k, nprobe=p)[1], truth)

        best = None  # (qps, k_factor, nprobe, recall)
        for kf in (k_factors if self.info.kind == "ivf" else (self.info.k_factor,)):
            self.info.k_factor = kf
            if self.info.kind == "flat":
                p, r = 1, rec(1)
            else:
                lo, hi = 0, 1
                while hi < self.info.nlist and rec(hi) < target_recall:
                    lo, hi = hi, hi * 2
                hi = min(hi, self.info.nlist)
                while hi - lo > 1:  # recall is monotone in nprobe: bisect between the last miss and the hit
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if rec(mid) >= target_recall else (mid, hi)
                p, r = hi, rec(hi)
            # Speed is not monotone in nprobe: a query whose lists hold fewer than k rows is searched
            # again wider, so a slightly larger nprobe can be faster. Time the smallest and the next
            # two powers of two above it (all meet the target: recall grows with nprobe), keep the fastest.
            timed, p_min = {}, p
            wider = [] if self.info.kind == "flat" else [min(self.info.nlist, 1 << (p.bit_length() + i))
                                                          for i in (0, 1)]
            for cand_p in sorted({p, *wider}):
                self.info.nprobe = cand_p
                timed[cand_p] = self.single_query_qps(queries[:200], k)
            p = max(timed, key=timed.get) if r >= target_recall else p
            self.info.nprobe = p
            cand = (timed[p], kf, p, rec(p) if p != p_min else r)
            log.debug("k_factor %d: nprobe %d recall %.3f %.0f QPS", kf, p, r, cand[0])
            if best is None or (cand[3] >= target_recall) > (best[3] >= target_recall) or (
                    (cand[3] >= target_recall) == (best[3] >= target_recall) and
                    (cand[0] > best[0] if cand[3] >= target_recall else cand[3] > best[3])):
                best = cand
            if r >= target_recall and p == 1:
                break  # cannot get cheaper by re-ranking more
        self.info.qps_single, self.info.k_factor, self.info.nprobe, self.info.recall_at_k = best
        self.info.target_recall, self.info.k = target_recall, k
        if self.info.recall_at_k < target_recall:
            log.warning("%s index reaches only recall@%d %.3f < target %.2f", self.info.kind, k,
                        self.info.recall_at_k, target_recall)
        log.info("tuned %s: k_factor=%d nprobe=%d recall@%d=%.3f (target %.2f), %.0f single-query QPS",
                 self.info.kind, self.info.k_factor, self.info.nprobe, k, self.info.recall_at_k, target_recall,
                 self.info.qps_single)
        return self.info

    def single_query_qps(self, queries: np.ndarray, k: int) -> float:
        t = time.perf_counter()
        for q in queries:
            self.search(q[None], k)
        return len(queries) / (time.perf_counter() - t)

    # -- live changes -----------------------------------------------------------------------------

    def _own(self) -> None:
        """Before the first change, a private copy of a mapped index: faiss cannot grow or shrink a
        view of a file (it aborts the process), and the other workers keep sharing the file."""
        if self.mapped:
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
            self.mapped = False

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append new items (e.g. a product added through the admin API) without a rebuild; returns their rows."""
        self._own()
        v = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        ids = np.arange(len(self.vectors), len(self.vectors) + len(v), dtype=np.int64)
        if self.info.kind == "ivf":  # explicit ids: after a removal the codes hold fewer than len(vectors)
            self.index.base_index.add_with_ids(v, ids)
            self.index.refine_index.add(v)
            self.index.ntotal = self.index.refine_index.ntotal
        elif self.info.kind == "hnsw":  # a graph never deletes: positions stay the row ids
            self.index.add(v)
        else:
            self.index.add_with_ids(v, ids)
        self.vectors = np.concatenate([self.vectors, v])
        self.live = np.concatenate([self.live, np.ones(len(v), bool)])
        self.n_live += len(v)
        if self._accel_args is not None:  # admin additions are rare: copy the grown index again
            self.use_gpu(self._accel_args[0], stand_in=self._accel_args[1])
        return ids

    def remove(self, ids: np.ndarray) -> int:
        """Delete items for good (rows are never reused); hiding is a filter, see ``search(allowed=...)``."""
        self._own()
        ids = np.asarray(ids, dtype=np.int64)
        self.live[ids] = False
        self.n_live = int(self.live.sum())
        if self.info.kind == "hnsw":  # the graph keeps the node; the live mask filters it out
            return len(ids)
        codes = self.index.base_index if self.info.kind == "ivf" else self.index
        return int(codes.remove_ids(ids))

    # -- files ------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, info: dict, vectors: np.ndarray, *, mmap: bool = False) -> VectorIndex:
        """``mmap``: the index's arrays are views of the file (faiss ``IO_FLAG_MMAP_IFC``, every kind), so
        the workers of one host share one copy in the page cache; the first change copies (``_own``)."""
        vi = cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0), IndexInfo(**info), vectors)
        vi.mapped = mmap
        return vi
