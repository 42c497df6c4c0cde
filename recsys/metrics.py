"""Top-K ranking metrics, numpy only, with RecBole's definitions (so tables compare):

- Recall@K = |hits in top K| / |relevant|
- NDCG@K   = Σ_{hits} 1/log2(rank+1) / Σ_{r=1}^{min(|relevant|, K)} 1/log2(r+1)
- MRR@K    = 1 / rank of the first hit (0 when none)
- Hit@K    = 1 if any hit
averaged over users with at least one relevant item. Plus list-level measures: catalog coverage,
novelty (mean self-information −log2 p(item) of recommended items) and the Gini index of how often
each item is recommended.
"""

from __future__ import annotations

import numpy as np


def hits_matrix(topk: np.ndarray, relevant: list[set[int]] | list[np.ndarray]) -> np.ndarray:
    """(U, K) bool: topk[u, r] is in relevant[u]."""
    out = np.zeros(topk.shape, bool)
    for u, rel in enumerate(relevant):
        if len(rel):
            out[u] = np.isin(topk[u], np.fromiter(rel, np.int64) if isinstance(rel, set) else rel)
    return out


def ranking_metrics(topk: np.ndarray, relevant: list, ks: tuple[int, ...] = (10, 20, 50, 100)) -> dict[str, float]:
    """topk: (U, Kmax) item indices, best first; relevant: per-user sets of item indices."""
    n_rel = np.array([len(r) for r in relevant])
    keep = n_rel > 0
    hits = hits_matrix(topk[keep], [r for r, k in zip(relevant, keep, strict=True) if k])
    n_rel = n_rel[keep]
    disc = 1.0 / np.log2(np.arange(2, topk.shape[1] + 2))  # (Kmax,)
    out = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(1)
        idcg = np.cumsum(disc[:k])[np.minimum(n_rel, k) - 1]
        first = np.where(h.any(1), h.argmax(1) + 1, np.inf)
        out[f"recall@{k}"] = float(np.mean(n_hit / n_rel))
        out[f"ndcg@{k}"] = float(np.mean((h * disc[:k]).sum(1) / idcg))
        out[f"mrr@{k}"] = float(np.mean(1.0 / first))
        out[f"hit@{k}"] = float(np.mean(n_hit > 0))
    return out


def ndcg_per_user(topk: np.ndarray, relevant: list, k: int) -> np.ndarray:
    """(U,) NDCG@k of each user's list (``ranking_metrics``' definition, before the mean); 0 for a user
    with nothing relevant. Paired comparisons (pipelines/gate.py) need the values, not the mean."""
    n_rel = np.array([len(r) for r in relevant])
    h = hits_matrix(topk[:, :k], relevant)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.cumsum(disc)[np.clip(n_rel, 1, k) - 1]
    return np.where(n_rel > 0, (h * disc[: h.shape[1]]).sum(1) / idcg, 0.0)


def list_metrics(topk: np.ndarray, n_items: int, item_popularity: np.ndarray) -> dict[str, float]:
    """Coverage, novelty and Gini of the recommended lists.  item_popularity: (n_items,) counts."""
    counts = np.bincount(topk.ravel(), minlength=n_items).astype(float)
    p = item_popularity / max(item_popularity.sum(), 1)
    selfinfo = -np.log2(np.clip(p, 1e-12, None))
    sorted_c = np.sort(counts)
    n = len(sorted_c)
    gini = float((2 * np.arange(1, n + 1) - n - 1) @ sorted_c / (n * sorted_c.sum())) if sorted_c.sum() else 0.0
    return {"coverage": float((counts > 0).mean()), "novelty": float(selfinfo[topk].mean()), "gini": gini}


def topk_from_scores(scores: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> np.ndarray:
    """Indices of the k best columns per row, best first; ``exclude[u]`` columns never returned."""
    s = scores.copy()
    if exclude is not None:
        for u, ex in enumerate(exclude):
            if len(ex):
                s[u, ex] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)
