"""Ranker features for (user, candidate) pairs: serving computes them for a request batch with the
same compiled pass (numba; common/jit.py) that training runs over thousands of users.

The ranker sees what the towers cannot: the tower's own score and rank among the candidates, how
much of the user's history sits in the candidate's category, the candidate's price against the
user's usual price, item popularity (all-time and recent) and age, and how the candidate's image
looks next to the images of the user's recent items, and what the other recall channels say about
it (recsys/channels.py: its rank in each, its item-to-item score). The tower vectors and the
category id go in beside these dense features (see recsys/ranker.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from common.jit import CACHE, check_rows, ragged
from common.mapped import open_npz
from recsys.union_kernel import ABSENT, FIELDS

# The ranker's dense features by name: the one declared list the kernel below writes, the ranker's
# feed reads (recsys/ranking.py) and every exported ranker names in its metadata. A new feature is
# a name here and its line in ``_features``; a bundle's ranker keeps the names it was trained on.
DENSE = ("tower_score", "tower_rank", "cat_share", "cat_seen", "rel_price", "popularity", "recent_popularity",
         "age", "image_sim_mean", "image_sim_max", "history_len", "same_cat_as_last",
         "item2item_score", "item2item_rank", "category_popular_rank", "item2item_recent_score")
# names older rankers declare for the same columns (bundles from before the channels had one name)
LEGACY_NAMES = {"i2i_score": "item2item_score", "i2i_rank": "item2item_rank", "catpop_rank": "category_popular_rank",
                "i2i_recent_score": "item2item_recent_score"}
_AT = {name: i for i, name in enumerate(DENSE)}
TOWER_SCORE, CAT_SHARE, CAT_SEEN, REL_PRICE = _AT["tower_score"], _AT["cat_share"], _AT["cat_seen"], _AT["rel_price"]
POPULARITY, RECENT_POPULARITY, AGE = _AT["popularity"], _AT["recent_popularity"], _AT["age"]
IMAGE_SIM_MEAN, IMAGE_SIM_MAX, HISTORY_LEN = _AT["image_sim_mean"], _AT["image_sim_max"], _AT["history_len"]
SAME_CAT_AS_LAST = _AT["same_cat_as_last"]
# the union's columns (recsys/union_kernel.py FIELDS) enter under their own names: ranks log-scaled, scores as they are
RANK_COLUMNS = tuple((i, _AT[f]) for i, f in enumerate(FIELDS) if f.endswith("_rank"))
SCORE_COLUMNS = tuple((i, _AT[f]) for i, f in enumerate(FIELDS) if not f.endswith("_rank"))
RECENT_DAYS = 7
RANK_SCALE = 200  # tower_rank = log1p(rank) / log1p(RANK_SCALE): same meaning whatever the list length


@dataclass
class ItemStats:
    """Per catalog row, as of ``now``: what the ranker needs to know about every item."""

    category: np.ndarray  # (I,) int64 category vocabulary index
    log_price: np.ndarray  # (I,) float32, log1p(price)
    popularity: np.ndarray  # (I,) float32, log1p(events up to now)
    recent: np.ndarray  # (I,) float32, log1p(events in the last RECENT_DAYS days)
    age_days: np.ndarray  # (I,) float32, days since created_at (0 if later)
    image: np.ndarray | None  # (I, E) unit vectors or None

    @classmethod
    def compute(cls, items: pd.DataFrame, category: np.ndarray, events: pd.DataFrame, item_rows: np.ndarray,
                image: np.ndarray | None) -> ItemStats:
        """``items`` in catalog-row order; ``item_rows`` = catalog row of each event (-1 = unknown)."""
        n = len(items)
        ok = item_rows >= 0
        now = events["ts"].max() if len(events) else pd.Timestamp.now(tz="UTC")
        recent = ok & (events["ts"] >= now - pd.Timedelta(days=RECENT_DAYS)).to_numpy()
        age = (now - items["created_at"]).dt.total_seconds().to_numpy() / 86400.0
        return cls(
            category=np.asarray(category, np.int64),
            log_price=np.log1p(items["price"].fillna(0).clip(lower=0).to_numpy(np.float32)),
            popularity=np.log1p(np.bincount(item_rows[ok], minlength=n)).astype(np.float32),
            recent=np.log1p(np.bincount(item_rows[recent], minlength=n)).astype(np.float32),
            age_days=np.clip(np.nan_to_num(age, nan=0.0), 0, None).astype(np.float32),
            image=None if image is None else np.asarray(image, np.float32),
        )

    def save(self, path: Path) -> None:
        arrays = {k: v for k, v in self.__dict__.items() if v is not None}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> ItemStats:
        """``mmap``: the arrays mapped copy-on-write, shared between the workers of one host."""
        z = open_npz(path, mmap=mmap)
        return cls(**{k: z.get(k) for k in cls.__dataclass_fields__})

    def append(self, category: int, log_price: float, image: np.ndarray | None) -> None:
        """A product added live: no events yet, brand new."""
        self.category = np.append(self.category, category)
        self.log_price = np.append(self.log_price, np.float32(log_price))
        self.popularity = np.append(self.popularity, np.float32(0))
        self.recent = np.append(self.recent, np.float32(0))
        self.age_days = np.append(self.age_days, np.float32(0))
        if self.image is not None:
            img = np.zeros((1, self.image.shape[1]), np.float32) if image is None else image.reshape(1, -1)
            self.image = np.concatenate([self.image, img.astype(np.float32)])


@numba.njit(cache=CACHE, nogil=True, fastmath=True)
def _dot(x: np.ndarray, y: np.ndarray) -> np.float32:
    """float32 dot product; fastmath lets LLVM vectorise the sum (its order, hence the last bits, differ)."""
    s = np.float32(0)
    for e in range(x.shape[0]):
        s += x[e] * y[e]
    return s


@numba.njit(cache=CACHE, nogil=True)
def _features(category, log_price, popularity, recent_pop, age_days, image, seen, seen_off, recent, recent_off,
              cand, score, ch, n_categories, out):  # pragma: no cover - compiled
    """Fills ``out`` (B, C, len(DENSE)), its columns by ``DENSE``'s names, in one pass per shopper:
    their category counts, median price, last category and recent images are gathered once, then
    every candidate reads them. The recent
    images sit in a small contiguous block that stays in cache while the candidates stream past."""
    B, C = cand.shape
    counts = np.zeros(n_categories, np.int64)
    inv = 1.0 / np.log1p(RANK_SCALE)
    E = image.shape[1]
    for b in range(B):
        s0, s1, r0, r1 = seen_off[b], seen_off[b + 1], recent_off[b], recent_off[b + 1]
        ns, nr = s1 - s0, r1 - r0
        for j in range(s0, s1):  # a category code past the table counts nowhere (as in the union kernel)
            if category[seen[j]] < n_categories:
                counts[category[seen[j]]] += 1
        median = np.float32(0)
        if ns:
            lp = np.sort(log_price[seen[s0:s1]])
            median = np.float32(0.5) * (lp[(ns - 1) // 2] + lp[ns // 2])
        last = category[recent[r0]] if nr else -1
        rimg = np.empty((nr if E else 0, E), np.float32)
        for j in range(rimg.shape[0]):
            rimg[j] = image[recent[r0 + j]]
        hist = np.log1p(ns)
        for c in range(C):
            i, o = cand[b, c], out[b, c]
            o[TOWER_SCORE] = score[b, c]
            for f, d in RANK_COLUMNS:
                o[d] = np.log1p(ch[b, c, f]) * inv
            for f, d in SCORE_COLUMNS:
                o[d] = ch[b, c, f]
            k = category[i]
            if ns:
                m = counts[k] if k < n_categories else 0
                o[CAT_SHARE] = np.float32(m) / np.float32(ns)
                o[CAT_SEEN] = np.log1p(m)
                o[REL_PRICE] = log_price[i] - median
            if nr:
                o[SAME_CAT_AS_LAST] = k == last
                if E:  # similarity to each recent image: their mean and max
                    tot, mx = np.float32(0), np.float32(-np.inf)
                    for j in range(nr):
                        d = _dot(image[i], rimg[j])
                        tot += d
                        mx = max(mx, d)
                    o[IMAGE_SIM_MEAN], o[IMAGE_SIM_MAX] = tot / nr, mx
            o[POPULARITY], o[RECENT_POPULARITY] = popularity[i], recent_pop[i]
            o[AGE], o[HISTORY_LEN] = np.log1p(age_days[i]), hist
        for j in range(s0, s1):  # reset only what this shopper touched
            if category[seen[j]] < n_categories:
                counts[category[seen[j]]] = 0


def tower_order(U: int, C: int) -> np.ndarray:
    """(U, C, len(FIELDS)): what the channels say when the candidates are the tower's list in its
    order and no other channel ran (absent from every other channel's list, no item-to-item score)."""
    ch = np.zeros((U, C, len(FIELDS)), np.float32)
    ch[..., FIELDS.index("tower_rank")] = np.arange(C)
    for f in FIELDS:
        if f.endswith("_rank") and f != "tower_rank":
            ch[..., FIELDS.index(f)] = ABSENT
    return ch


def rank_features(stats: ItemStats, seen: list[np.ndarray], recent: list[np.ndarray], cand: np.ndarray,
                  score: np.ndarray, n_categories: int, channels: dict[str, np.ndarray] | np.ndarray | None = None
                  ) -> np.ndarray:
    """(U, C, len(DENSE)) float32 features, one compiled pass (no GIL held): serving's request batch
    and training's thousands of users take the same code.

    seen: per user, catalog rows of everything they interacted with (category share, usual price);
    recent: per user, their most recent rows, most recent first (image similarity, last category);
    cand, score: (U, C) candidate rows and their tower scores (u · v);
    channels: what the recall channels said (recsys.channels): (U, C) arrays named by ``FIELDS``,
    or one (U, C, len(FIELDS)) block in that order (``union_block``'s); None: the
    candidates are the tower's list in its order and no other channel ran.
    """
    U, C = cand.shape
    if channels is None:
        ch = tower_order(U, C)
    elif isinstance(channels, dict):
        ch = np.stack([np.asarray(channels[k], np.float32) for k in FIELDS], -1)
    else:
        ch = np.asarray(channels, np.float32)
    if ch.shape != (U, C, len(FIELDS)):
        raise ValueError(f"rank_features: channels of shape {ch.shape} for {U} x {C} candidates")
    n = len(stats.category)
    s, r = ragged(seen), ragged(recent)
    cand = np.asarray(cand, np.int64)
    check_rows("rank_features", n, cand=cand, seen=s[0], recent=r[0])
    cats = stats.category if stats.category.dtype == np.int64 else stats.category.astype(np.int64)
    image = stats.image if stats.image is not None else np.zeros((0, 0), np.float32)
    out = np.zeros((U, C, len(DENSE)), np.float32)
    _features(cats, stats.log_price, stats.popularity, stats.recent, stats.age_days, image, *s, *r, cand,
              np.asarray(score, np.float32), ch, n_categories, out)
    return out
