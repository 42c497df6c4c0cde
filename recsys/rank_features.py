"""Ranker features for (user, candidate) pairs. numpy + pandas only: serving computes the same
features for one request that training computed for thousands of users.

The ranker sees what the towers cannot: the tower's own score and rank among the candidates, how
much of the user's history sits in the candidate's category, the candidate's price against the
user's usual price, item popularity (all-time and recent) and age, and how the candidate's image
looks next to the images of the user's recent items. The tower vectors and the category id go in
beside these dense features (see recsys/ranker.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DENSE = ("tower_score", "tower_rank", "cat_share", "cat_seen", "rel_price", "popularity", "recent_popularity",
         "age", "image_sim_mean", "image_sim_max", "history_len", "same_cat_as_last")
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
    def load(cls, path: Path) -> ItemStats:
        with np.load(path) as z:
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


def rank_features(stats: ItemStats, seen: list[np.ndarray], recent: list[np.ndarray], cand: np.ndarray,
                  score: np.ndarray, n_categories: int) -> np.ndarray:
    """(U, C, len(DENSE)) float32 features.

    seen: per user, catalog rows of everything they interacted with (category share, usual price);
    recent: per user, their most recent rows, most recent first (image similarity, last category);
    cand, score: (U, C) candidate rows in tower order and their tower scores.
    """
    U, C = cand.shape
    out = np.zeros((U, C, len(DENSE)), np.float32)
    out[..., 0] = score
    out[..., 1] = np.log1p(np.arange(C, dtype=np.float32)) / np.log1p(RANK_SCALE)
    ccat = stats.category[cand]  # (U, C)
    for u in range(U):
        s = seen[u]
        if len(s):
            counts = np.bincount(stats.category[s], minlength=n_categories).astype(np.float32)
            out[u, :, 2] = counts[ccat[u]] / len(s)
            out[u, :, 3] = np.log1p(counts[ccat[u]])
            lp = np.sort(stats.log_price[s])  # the median, without np.median's per-call overhead (~50 µs)
            out[u, :, 4] = stats.log_price[cand[u]] - 0.5 * (lp[(len(lp) - 1) // 2] + lp[len(lp) // 2])
        r = recent[u]
        if len(r):
            out[u, :, 11] = ccat[u] == stats.category[r[0]]
            if stats.image is not None:
                sims = stats.image[cand[u]] @ stats.image[r].T  # (C, R)
                out[u, :, 8], out[u, :, 9] = sims.mean(1), sims.max(1)
        out[u, :, 10] = np.log1p(len(s))
    out[..., 5] = stats.popularity[cand]
    out[..., 6] = stats.recent[cand]
    out[..., 7] = np.log1p(stats.age_days[cand])
    return out
