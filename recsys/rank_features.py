"""Ranker features for (user, candidate) pairs. numpy + pandas only: serving computes the same
features for one request that training computed for thousands of users.

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

import numpy as np
import pandas as pd

from common.mapped import open_npz
from recsys.channels import ABSENT

DENSE = ("tower_score", "tower_rank", "cat_share", "cat_seen", "rel_price", "popularity", "recent_popularity",
         "age", "image_sim_mean", "image_sim_max", "history_len", "same_cat_as_last",
         "i2i_score", "i2i_rank", "catpop_rank", "i2i_recent_score")
# the fields of recsys.channels.Candidates the features read
CHANNEL_FEATURES = ("tower_rank", "i2i_score", "i2i_rank", "catpop_rank", "i2i_recent_score")
RECENT_DAYS = 7
USERS_PER_PASS = 256
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


def _segments(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ragged lists -> (values, owner of each value, length of each list), for per-user reductions
    without a Python loop (serving builds features for a whole request batch at once)."""
    lens = np.fromiter((len(x) for x in lists), np.int64, len(lists))
    values = np.concatenate(lists).astype(np.int64) if lens.sum() else np.zeros(0, np.int64)
    return values, np.repeat(np.arange(len(lists)), lens), lens


def _rank(r: np.ndarray) -> np.ndarray:
    return np.log1p(r) / np.log1p(RANK_SCALE)


def rank_features(stats: ItemStats, seen: list[np.ndarray], recent: list[np.ndarray], cand: np.ndarray,
                  score: np.ndarray, n_categories: int, channels: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(U, C, len(DENSE)) float32 features.

    seen: per user, catalog rows of everything they interacted with (category share, usual price);
    recent: per user, their most recent rows, most recent first (image similarity, last category);
    cand, score: (U, C) candidate rows and their tower scores (u · v);
    channels: (U, C) arrays named by CHANNEL_FEATURES (ranks from recsys.channels.Candidates); None:
    the candidates are the tower's list in its order and no other channel ran.
    """
    U, C = cand.shape
    if U > USERS_PER_PASS:  # training-size inputs: bound the (U, C, E) and (U, C, R) temporaries
        sl = [slice(i, i + USERS_PER_PASS) for i in range(0, U, USERS_PER_PASS)]
        return np.concatenate([rank_features(stats, seen[s], recent[s], cand[s], score[s], n_categories,
                                             None if channels is None else {k: v[s] for k, v in channels.items()})
                               for s in sl])
    out = np.zeros((U, C, len(DENSE)), np.float32)
    out[..., 0] = score
    if channels is None:
        out[..., 1] = _rank(np.arange(C, dtype=np.float32))
        out[..., 13:15] = _rank(np.float32(ABSENT))
    else:
        out[..., 1] = _rank(channels["tower_rank"])
        out[..., 12] = channels["i2i_score"]
        out[..., 13] = _rank(channels["i2i_rank"])
        out[..., 14] = _rank(channels["catpop_rank"])
        out[..., 15] = channels["i2i_recent_score"]
    ccat = stats.category[cand]  # (U, C)
    rows = np.arange(U)[:, None]

    s, owner, n_seen = _segments(seen)
    counts = np.bincount(owner * n_categories + stats.category[s], minlength=U * n_categories)
    counts = counts.reshape(U, n_categories).astype(np.float32)[rows, ccat]  # (U, C) seen items in c's category
    has = n_seen > 0
    out[..., 2] = np.where(has[:, None], counts / np.maximum(n_seen, 1)[:, None], 0)
    out[..., 3] = np.log1p(counts)
    # Median log-price per user: sort by (user, price), average the one or two middle entries.
    lp = stats.log_price[s][np.lexsort((stats.log_price[s], owner))]
    start = np.concatenate([[0], np.cumsum(n_seen)[:-1]])
    lo, hi = start + np.maximum(n_seen - 1, 0) // 2, start + n_seen // 2
    median = 0.5 * (lp[np.minimum(lo, len(lp) - 1)] + lp[np.minimum(hi, len(lp) - 1)]) if len(lp) else np.zeros(U)
    out[..., 4] = np.where(has[:, None], stats.log_price[cand] - median[:, None], 0)

    r, r_owner, n_recent = _segments(recent)
    first = np.concatenate([[0], np.cumsum(n_recent)[:-1]])
    has_r = n_recent > 0
    last_cat = stats.category[r[np.minimum(first, max(len(r) - 1, 0))]] if len(r) else np.zeros(U, np.int64)
    out[..., 11] = has_r[:, None] & (ccat == last_cat[:, None])
    if stats.image is not None and len(r):
        # (U, C, R) similarities of each candidate's image to the user's recent images in one batched
        # matmul: histories padded to the longest with copies of their own first item (a duplicate
        # leaves the max unchanged); the mean is the candidate against the mean recent image.
        R = int(n_recent.max())
        take = first[:, None] + np.minimum(np.arange(R)[None, :], np.maximum(n_recent - 1, 0)[:, None])  # (U, R)
        cand_img = stats.image[cand]  # (U, C, E)
        sims_max = (cand_img @ stats.image[r[np.minimum(take, len(r) - 1)]].transpose(0, 2, 1)).max(2)  # (U, C)
        mean_img = np.zeros((U, stats.image.shape[1]), np.float32)
        mean_img[has_r] = np.add.reduceat(stats.image[r], first[has_r]) / n_recent[has_r, None]
        out[..., 8] = (cand_img @ mean_img[:, :, None])[..., 0]
        out[..., 9] = np.where(has_r[:, None], sims_max, 0)
    out[..., 10] = np.log1p(n_seen)[:, None]
    out[..., 5] = stats.popularity[cand]
    out[..., 6] = stats.recent[cand]
    out[..., 7] = np.log1p(stats.age_days[cand])
    return out
