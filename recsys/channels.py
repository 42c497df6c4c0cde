"""Recall channels beside the two-tower's ANN retrieval (docs/architecture.md, "One request").

The two-tower finds items *like the shopper*; two cheap channels find what it misses:

- ``item2item``: the best neighbours of each item, precomputed — EASE's weights (Steck 2019) on a
  catalog small enough for its dense inverse, ItemKNN cosine otherwise — kept as the top ``K``
  targets of every source item. A shopper's score for item j is the sum of the weights from the
  items they saw to j, summed over their neighbour entries only, no model call.
- ``category_popular``: the most popular items of the categories the shopper buys in, weighted
  by the share of their history in each.

The union of the channels goes to the ranker, which sees every candidate's rank in each channel
and its item-to-item score (recsys/rank_features.py). The union has a fixed size: the extra
channels contribute their top lists, and the tower's list fills the rest, so the ranker always
sees the same number of candidates offline and online. ``union_block`` computes it for a batch in
one compiled call (recsys/union_kernel.py); ``item2item_scores`` and ``category_popular`` are the
same channels in plain numpy, the tests' oracle.

numpy and numba at serving time (scipy for fitting): serving imports this module.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from common.jit import check_rows, ragged
from common.mapped import open_npz
from recsys.config import ChannelConfig as ChannelConfig  # re-exported: the channels' recipe
from recsys.union_kernel import ABSENT as ABSENT  # re-exported: the rank of a candidate a channel lacks
from recsys.union_kernel import CHANNELS as CHANNELS  # re-exported: the channels' one set of names
from recsys.union_kernel import FIELDS as FIELDS  # re-exported: the union block's columns
from recsys.union_kernel import union_batch

log = logging.getLogger(__name__)

@dataclass
class Channels:
    """The precomputed channel tables a bundle carries (``channels.npz``)."""

    neighbours: np.ndarray  # (I, K) int32 target rows of each source row, -1 = none
    weights: np.ndarray  # (I, K) float32 weight of each target
    category_top: np.ndarray  # (n_categories, M) int32 rows by popularity, -1 = none
    popularity: np.ndarray  # (I,) float32 log1p(interactions), the category channel's order
    config: ChannelConfig

    def save(self, path: Path) -> None:
        # uncompressed: serving maps the tables instead of reading them (common/mapped.py)
        np.savez(path, neighbours=self.neighbours, weights=self.weights, category_top=self.category_top,
                            popularity=self.popularity, config=np.array(json.dumps(asdict(self.config))))

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> Channels:
        """``mmap``: the tables mapped copy-on-write, shared between the workers of one host."""
        z = open_npz(path, mmap=mmap)
        return cls(z["neighbours"], z["weights"], z["category_top"], z["popularity"],
                   ChannelConfig(**json.loads(str(z["config"]))))

    def append_item(self) -> None:
        """A product added live: no neighbours yet, never anyone's neighbour, no interactions."""
        self.neighbours = np.concatenate([self.neighbours, np.full((1, self.neighbours.shape[1]), -1, np.int32)])
        self.weights = np.concatenate([self.weights, np.zeros((1, self.weights.shape[1]), np.float32)])
        self.popularity = np.append(self.popularity, np.float32(0))


# ---------------------------------------------------------------------- fitting (offline)


def binary_matrix(user: np.ndarray, row: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(users, I) binary interactions from (user code, item row) pairs; rows < 0 dropped."""
    ok = row >= 0
    _, u = np.unique(user[ok], return_inverse=True)
    X = sp.csr_matrix((np.ones(ok.sum(), np.float32), (u, row[ok])), shape=(int(u.max(initial=-1)) + 1, n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def _top_per_row(S: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) column indices and values of the k entries of largest magnitude of each row, -1/0 padded.
    By magnitude, not value: EASE's negative weights ("people who saw i rarely see j") carry as
    much of its accuracy as the positive ones (on MovieLens' random split, 200 neighbours kept by
    magnitude score NDCG@10 0.331, by value 0.313; all 1,682 0.339)."""
    n = S.shape[0]
    idx, val = np.full((n, k), -1, np.int32), np.zeros((n, k), np.float32)
    S = sp.csr_matrix(S)
    S.eliminate_zeros()
    for i in range(n):
        lo, hi = S.indptr[i], S.indptr[i + 1]
        if hi == lo:
            continue
        d, c = S.data[lo:hi], S.indices[lo:hi]
        top = np.argsort(-np.abs(d), kind="stable")[:k]
        idx[i, : len(top)], val[i, : len(top)] = c[top], d[top]
    return idx, val


def ease_dense(Xk: np.ndarray, lam: float) -> np.ndarray:
    """(k, k) float32 EASE weights (Steck 2019) of a dense (users, k) binary matrix: B = I - P·diag(1/diag P),
    P = (XᵀX + λI)⁻¹, so B_ij = -P_ij / P_jj off the diagonal and 0 on it. O(k³): callers bound k."""
    Xk = np.asarray(Xk, np.float64)
    P = np.linalg.inv(Xk.T @ Xk + lam * np.eye(Xk.shape[1]))
    B = -P / np.diag(P)[None]
    np.fill_diagonal(B, 0.0)
    return B.astype(np.float32)


def ease_weights(X: sp.csr_matrix, lam: float, max_items: int) -> sp.csr_matrix:
    """(I, I) EASE item-item weights B (source row, target column) over the ``max_items`` most
    interacted items; the rest have none."""
    counts = np.asarray(X.sum(0)).ravel()
    keep = np.sort(np.argsort(-counts, kind="stable")[: min(max_items, X.shape[1])])
    B = sp.coo_matrix(ease_dense(X[:, keep].toarray(), lam))
    return sp.csr_matrix((B.data, (keep[B.row], keep[B.col])), shape=(X.shape[1], X.shape[1]))


def itemknn_weights(X: sp.csr_matrix) -> sp.csr_matrix:
    """(I, I) cosine similarity of items' user sets, diagonal zeroed (RecBole's ItemKNN, shrink 0)."""
    norms = np.sqrt(np.asarray(X.multiply(X).sum(0)).ravel()) + 1e-9
    S = (X.T @ X).tocsr().astype(np.float32)
    S = sp.diags(1 / norms) @ S @ sp.diags(1 / norms)
    S.setdiag(0)
    return sp.csr_matrix(S)


def fit_channels(X: sp.csr_matrix, category: np.ndarray, n_categories: int, cfg: ChannelConfig) -> Channels:
    """The channel tables from a (users, I) binary interaction matrix and each item's category code."""
    n = X.shape[1]
    method = cfg.method if cfg.method != "auto" else ("ease" if n <= cfg.ease_max_items else "itemknn")
    if method not in ("ease", "itemknn"):
        raise ValueError(f"unknown item-to-item method {cfg.method!r}: ease, itemknn or auto")
    W = ease_weights(X, cfg.ease_lambda, cfg.ease_max_items) if method == "ease" else itemknn_weights(X)
    neighbours, weights = _top_per_row(W, cfg.neighbours)
    pop = np.log1p(np.asarray(X.sum(0)).ravel()).astype(np.float32)
    category = np.asarray(category, np.int64)
    order = np.lexsort((-pop, category))  # by category, most popular first
    top = np.full((n_categories, cfg.per_category), -1, np.int32)
    starts = np.searchsorted(category[order], np.arange(n_categories))
    ends = np.searchsorted(category[order], np.arange(n_categories), side="right")
    for c in range(n_categories):
        rows = order[starts[c] : min(ends[c], starts[c] + cfg.per_category)]
        top[c, : len(rows)] = rows
    log.info("channels: item-to-item %s over %d items (%d neighbours each), %d categories", method, n,
             cfg.neighbours, n_categories)
    return Channels(neighbours, weights, top, pop, cfg)


# ---------------------------------------------------------------------- candidates (offline and online)


def _neighbours_of(ch: Channels, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (target row, weight) pairs of the shopper's items' neighbours (items added live have none)."""
    seen = seen[seen < len(ch.neighbours)]
    nb, w = ch.neighbours[seen].ravel(), ch.weights[seen].ravel()
    ok = nb >= 0
    return nb[ok], w[ok]


def item2item_scores(ch: Channels, seen: np.ndarray, n_items: int) -> np.ndarray:
    """(I,) sum of the neighbour weights from the shopper's items to every item."""
    nb, w = _neighbours_of(ch, seen)
    return np.bincount(nb, weights=w, minlength=n_items).astype(np.float32)


def category_popular(ch: Channels, category: np.ndarray, seen: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The popular items of the shopper's categories, ordered by share of their history × popularity
    (the union's kernel computes the same list; this is its readable form, the tests' oracle)."""
    if not len(seen) or n == 0:
        return np.zeros(0, np.int64)
    share = np.bincount(category[seen], minlength=len(ch.category_top)) / len(seen)
    cats = np.flatnonzero(share)
    rows = ch.category_top[cats].ravel().astype(np.int64)
    rows = rows[(rows >= 0) & (rows < len(allowed))]
    rows = rows[allowed[rows]]
    score = share[category[rows]] * (1.0 + ch.popularity[rows])
    return rows[np.argsort(-score, kind="stable")[:n]]  # ties keep their place in the category lists


@dataclass
class Candidates:
    """One shopper's candidate union and what each channel says about each candidate (``FIELDS``)."""

    rows: np.ndarray  # (C,) catalog rows: the tower's candidates in its order, then the others'
    tower_rank: np.ndarray  # (C,) position in the tower's list, ABSENT if not in it
    item2item_rank: np.ndarray  # (C,)
    category_popular_rank: np.ndarray  # (C,)
    item2item_score: np.ndarray  # (C,) item-to-item score (0 when the shopper has no neighbours of it)
    item2item_recent_score: np.ndarray  # (C,) the same from the shopper's ``recent_items`` latest items only

    def found_by(self) -> dict[int, list[str]]:
        """Row -> the channels (``CHANNELS``) whose lists hold it."""
        ranks = np.stack([getattr(self, f"{c}_rank") for c in CHANNELS], 1) < ABSENT  # (C, channels)
        return {r: [c for c, hit in zip(CHANNELS, h, strict=True) if hit]
                for r, h in zip(self.rows.tolist(), ranks.tolist(), strict=True)}

_scratch = threading.local()  # per thread: the kernel's catalog-sized scratch (zero between calls)


def _scratch_for(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    got = getattr(_scratch, "arrays", None)
    if got is None or len(got[0]) < n:  # grows with the catalog (products added live)
        got = _scratch.arrays = (np.zeros(n, np.float64), np.zeros(n, np.uint8), np.zeros(n, np.int32))
    return got


def _no_channels() -> Channels:
    """Empty tables: the union is then the tower's list with absent channel ranks and zero scores,
    the features a ranker trained without channels saw."""
    return Channels(np.full((0, 1), -1, np.int32), np.zeros((0, 1), np.float32), np.full((0, 1), -1, np.int32),
                    np.zeros(0, np.float32), ChannelConfig(item2item=0, category_popular=0))


def union_block(ch: Channels | None, tower: np.ndarray, seen: list[np.ndarray], recent: list[np.ndarray],
                allowed: np.ndarray, category: np.ndarray, size: int, blocked: list[np.ndarray] | None = None,
                n_tower: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``union_many`` for a (B, T) block of tower answers (-1 = none, e.g. FAISS's), as one padded
    block: rows (B, size) int64, features (B, size, len(FIELDS)) float32 named by ``FIELDS``, lengths (B,);
    past a shopper's length the block holds zeros. The tower's list is the first ``n_tower``
    (default: all) rows of its answer that are not ``blocked``."""
    tower = np.asarray(tower, np.int64)
    B = len(tower)
    rows, lens = np.zeros((B, size), np.int64), np.zeros(B, np.int64)
    feats = np.zeros((B, size, len(FIELDS)), np.float32)
    if not B:
        return rows, feats, lens
    ch = ch if ch is not None else _no_channels()
    seen_, recent_ = ragged(seen), ragged(recent)
    bl = ragged(blocked if blocked is not None else [np.zeros(0, np.int64)] * B)
    n = len(allowed)
    if len(category) < n or len(ch.neighbours) > n:
        raise ValueError(f"union: {len(category)} categories and {len(ch.neighbours)} neighbour lists for {n} rows")
    check_rows("union", n, ("tower",), tower=tower.ravel(), seen=seen_[0], recent=recent_[0], blocked=bl[0])
    acc, flag, slot = _scratch_for(n)
    cfg = ch.config
    union_batch(ch.neighbours, ch.weights, ch.category_top, ch.popularity, np.asarray(category, np.int64),
                np.asarray(allowed, np.bool_), tower, *seen_, *recent_, *bl, size,
                tower.shape[1] if n_tower is None else n_tower, cfg.item2item, cfg.category_popular, cfg.recent_items,
                acc, flag, slot, rows, feats, lens)
    return rows, feats, lens


def candidates_of(rows: np.ndarray, feats: np.ndarray, lens: np.ndarray) -> list[Candidates]:
    """Per shopper, views of ``union_block``'s block."""
    return [Candidates(rows[b, :n], **{k: feats[b, :n, f] for f, k in enumerate(FIELDS)})
            for b, n in enumerate(lens.tolist())]


def union_many(ch: Channels | None, towers: list[np.ndarray] | np.ndarray, seen: list[np.ndarray],
               recent: list[np.ndarray], allowed: np.ndarray, category: np.ndarray, size: int,
               blocked: list[np.ndarray] | None = None) -> list[Candidates]:
    """Per shopper, at most ``size`` candidates: the extra channels' lists (over ``allowed`` rows less
    the shopper's ``blocked`` ones, e.g. their purchases), then the tower's list (already filtered,
    in its order) fills the rest. Without channels: the tower's first ``size``.
    ``seen``: every item of the shopper's; ``recent``: their latest, most recent first.

    - item-to-item: the top ``item2item`` rows by positive score (the sum of neighbour weights from
      the shopper's items), ties to the lower row;
    - popular in the shopper's categories: the top ``category_popular`` by share × (1 + popularity)
      (``category_popular``);
    - picked = the item-to-item list, then the category list's rows not in it; the tower's rows a
      channel picked keep their tower position, the first other tower rows fill ``size -
      len(picked)`` places, then the picked rows the tower lacked follow.

    One compiled call for the whole batch (recsys/union_kernel.py): nothing here is catalog-sized
    per shopper, and the call does not hold the GIL."""
    if not isinstance(towers, np.ndarray):  # ragged lists: one -1 padded block
        block = np.full((len(towers), max((len(t) for t in towers), default=0)), -1, np.int64)
        for j, t in enumerate(towers):
            block[j, : len(t)] = t
        towers = block
    return candidates_of(*union_block(ch, towers, seen, recent, allowed, category, size, blocked))


def union(ch: Channels | None, tower: np.ndarray, seen: np.ndarray, recent: np.ndarray, allowed: np.ndarray,
          category: np.ndarray, size: int) -> Candidates:
    """``union_many`` for one shopper."""
    return union_many(ch, [tower], [seen], [recent], allowed, category, size)[0]
