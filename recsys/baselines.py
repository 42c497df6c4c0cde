"""Non-neural baselines in the same harness as the two-tower model. Each ``fit`` takes the
training interactions as catalog rows and returns a score function over evaluation users.

- Popularity: training interaction count.
- Popularity per category: P(category | user history) · P(item | category), the generative
  "favourite aisle" model.
- ItemKNN: cosine item-item similarity on the binary user × item matrix, top-k neighbours kept,
  score = sum of similarities to the user's training items (RecBole's ItemKNN with shrink 0).
- EASE (Steck 2019): B = I − P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹, score = X_u·B. Dense in the
  catalog size, so ``max_items`` restricts it to the most popular items on large catalogs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.channels import binary_matrix, ease_dense, itemknn_weights
from recsys.data import EvalUsers, RecData
from recsys.evaluate import ScoreFn, evaluate_ranking, segment_metrics, two_tower_scores
from recsys.train import load_with_data


def interaction_matrix(data: RecData, eu: EvalUsers) -> sp.csr_matrix:
    """(U, I) binary: each evaluation user's seen items (the ones excluded from ranking)."""
    rows = np.repeat(np.arange(len(eu.exclude)), [len(e) for e in eu.exclude])
    cols = np.concatenate(eu.exclude) if eu.exclude else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(eu.exclude), data.n_items))


def train_matrix(data: RecData) -> sp.csr_matrix:
    """(users, I) binary training matrix over all training users (repeated interactions count once)."""
    return binary_matrix(data.train.user, data.train.item_row, data.n_items)


def popularity(data: RecData, eu: EvalUsers) -> ScoreFn:
    pop = data.item_counts.astype(np.float32)
    return lambda pos: np.broadcast_to(pop, (len(pos), len(pop)))


def popularity_per_category(data: RecData, eu: EvalUsers, smoothing: float = 1.0) -> ScoreFn:
    cat = data.item_inputs["category"]
    n_cat = int(cat.max()) + 1
    cat_pop = np.bincount(cat, weights=data.item_counts, minlength=n_cat)
    p_item_given_cat = data.item_counts / np.maximum(cat_pop[cat], 1)  # (I,)
    seen = interaction_matrix(data, eu)
    C = sp.csr_matrix((np.ones(len(cat)), (np.arange(len(cat)), cat)), shape=(len(cat), n_cat))
    user_cat = np.asarray((seen @ C).todense()) + smoothing * cat_pop / cat_pop.sum()  # (U, C)
    user_cat /= user_cat.sum(1, keepdims=True)
    return lambda pos: (user_cat[pos][:, cat] * p_item_given_cat[None]).astype(np.float32)


def item_knn(data: RecData, eu: EvalUsers, k: int = 100) -> ScoreFn:
    S = itemknn_weights(train_matrix(data))  # (I, I) cosine, diagonal zeroed
    S.eliminate_zeros()
    S = _keep_top_k(S.tocsr(), k)
    seen = interaction_matrix(data, eu)
    return lambda pos: np.asarray((seen[pos] @ S).todense(), dtype=np.float32)


def _keep_top_k(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each column (neighbours of each target item)."""
    S = S.T.tocsr()
    rows, cols, vals = [], [], []
    for i in range(S.shape[0]):
        lo, hi = S.indptr[i], S.indptr[i + 1]
        top = np.argpartition(-S.data[lo:hi], k - 1)[:k] + lo if hi - lo > k else np.arange(lo, hi)
        rows.append(np.full(len(top), i))
        cols.append(S.indices[top])
        vals.append(S.data[top])
    T = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=S.shape)
    return T.T.tocsr()


def ease(data: RecData, eu: EvalUsers, lam: float = 250.0, max_items: int = 5_000) -> ScoreFn:
    X = train_matrix(data)
    keep = np.argsort(-data.item_counts, kind="stable")[: min(max_items, data.n_items)]
    Bm = ease_dense(X[:, keep].toarray(), lam)
    seen = interaction_matrix(data, eu)[:, keep]
    n = data.n_items

    def score(pos: np.ndarray) -> np.ndarray:
        out = np.full((len(pos), n), -1e9, np.float32)  # items outside the EASE set rank last
        out[:, keep] = np.asarray(seen[pos].todense(), np.float32) @ Bm
        return out

    return score


BASELINES = {"popularity": popularity, "popularity-per-category": popularity_per_category,
             "itemknn": item_knn, "ease": ease}


def evaluate_with_baselines(checkpoint: Path, data_dir: Path, *, split: str = "temporal-user",
                            image_vectors: Path | None = None, baselines: bool = True) -> dict:
    """Full-catalog test metrics (train+valid masked) of a two-tower checkpoint, the baselines beside
    it and the two-tower by segment; written to ``test_metrics.json`` beside the checkpoint (where
    `vitrine bundle build` reads them)."""
    model, d = load_with_data(checkpoint, data_dir, split=split, image_vectors=image_vectors)
    scores = two_tower_scores(model, d, d.test)
    rows = {"two-tower": evaluate_ranking(scores, d.test, d)}
    if baselines:
        rows |= {name: evaluate_ranking(fit(d, d.test), d.test, d) for name, fit in BASELINES.items()}
    out = {"models": rows, "two-tower segments": segment_metrics(scores, d.test, d)}
    (checkpoint.parent / "test_metrics.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
