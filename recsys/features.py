"""Feature encoding shared by training and serving. numpy + pandas only: serving imports this.

Everything the towers see is an integer index into an embedding table, fixed by a JSON spec that
training writes and serving reads, so both sides encode a request identically:

- ids (users, items) and categorical features -> vocabulary index; 0 = padding, 1 = out of
  vocabulary. Past ``max_vocab`` distinct values an id space is hashed into buckets instead
  (stable across processes: pandas' SipHash with a fixed key).
- price -> bucket by quantile edges fitted on the training catalog.
- a user's recent history -> the item indices of their last ``history_len`` events, most recent
  first, padded with 0 (the short-term, sequence view);
- a user's whole history -> their ``profile_len`` most recent distinct items with a weight each:
  the sum over that item's events of the event type's weight times a recency decay (the long-term
  view; ``user_profiles``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PAD, OOV = 0, 1
PROFILE_LEN = 200  # default long-term profile length (distinct items)
EVENT_WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 4.0}  # a purchase says more than a view
FIRST = 2  # vocabulary index of the first listed value: index = position in ``Vocab.values`` + FIRST
_HASH_KEY = "vitrine-features"  # 16 bytes: SipHash key for hashed id spaces


@dataclass
class Vocab:
    """Value -> index. ``values`` lists the in-vocabulary values (index = position + FIRST).

    For the item vocabulary, a value's position is its catalog row (the catalog sorted by item id),
    which is also its FAISS id and its column in score matrices: ``index_of_row`` / ``row_of_index``
    are the one place that offset is applied."""

    values: list[str] = field(default_factory=list)
    hash_buckets: int = 0  # > 0: no list, index = FIRST + siphash(value) % hash_buckets

    @classmethod
    def fit(cls, values: pd.Series | np.ndarray, max_vocab: int = 5_000_000, hash_buckets: int | None = None) -> Vocab:
        uniq = pd.unique(pd.Series(values).dropna().astype(str))
        if len(uniq) > max_vocab:
            return cls(values=[], hash_buckets=hash_buckets or max_vocab)
        return cls(values=sorted(uniq.tolist()))

    @property
    def size(self) -> int:
        """Rows of the embedding table (including padding and OOV)."""
        return FIRST + (self.hash_buckets or len(self.values))

    def __post_init__(self) -> None:
        self._index = None if self.hash_buckets else pd.Index(self.values)

    def encode(self, values: pd.Series | np.ndarray | list) -> np.ndarray:
        s = pd.Series(values, dtype=object)
        missing = s.isna().to_numpy()
        s = s.astype(str)
        if self.hash_buckets:
            h = pd.util.hash_array(s.to_numpy(dtype=object), hash_key=_HASH_KEY, categorize=False)
            out = FIRST + (h % np.uint64(self.hash_buckets)).astype(np.int64)
        else:
            pos = self._index.get_indexer(s)
            out = np.where(pos >= 0, pos + FIRST, OOV).astype(np.int64)
        out[missing] = OOV
        return out

    @staticmethod
    def index_of_row(rows: np.ndarray) -> np.ndarray:
        """Positions in ``values`` (catalog rows, for items) -> vocabulary indices (a torch tensor of
        rows works alike: training calls it on the device)."""
        return rows + FIRST

    @staticmethod
    def row_of_index(index: np.ndarray) -> np.ndarray:
        """Vocabulary indices -> positions in ``values`` (catalog rows); -1 for padding and OOV."""
        index = np.asarray(index, np.int64)
        return np.where(index >= FIRST, index - FIRST, -1)

    def encode_rows(self, values: pd.Series | np.ndarray | list) -> np.ndarray:
        """Values -> positions in ``values`` (catalog rows, for items); -1 for unknown or missing values."""
        return self.row_of_index(self.encode(values))

    def to_dict(self) -> dict:
        return {"values": self.values, "hash_buckets": self.hash_buckets}


@dataclass
class FeatureSpec:
    item_vocab: Vocab
    user_vocab: Vocab
    category_vocab: Vocab
    price_edges: list[float]  # interior quantile edges; bucket = 1 + searchsorted (0 = padding)
    user_features: dict[str, Vocab]  # categorical user columns
    history_len: int = 20
    profile_len: int = 0  # distinct items in the long-term profile (0: the model has none)
    event_weights: dict[str, float] = field(default_factory=lambda: dict(EVENT_WEIGHTS))
    half_life_days: float = 0.0  # recency decay of profile weights, relative to the user's last event (0: none)

    @property
    def n_price_buckets(self) -> int:
        return len(self.price_edges) + 2

    # ---------------------------------------------------------------- fit / save / load

    @classmethod
    def fit(cls, items: pd.DataFrame, users: pd.DataFrame, *, n_price_buckets: int = 10, history_len: int = 20,
            user_feature_columns: list[str] | None = None, max_vocab: int = 5_000_000, profile_len: int = 0,
            event_weights: dict[str, float] | None = None, half_life_days: float = 0.0) -> FeatureSpec:
        prices = items["price"].to_numpy(float)
        qs = np.quantile(prices, np.linspace(0, 1, n_price_buckets + 1)[1:-1]) if len(prices) else []
        edges = sorted(set(float(q) for q in qs))
        if user_feature_columns is None:  # every non-numeric, non-time column is a categorical feature
            user_feature_columns = [c for c in users.columns if c != "user_id"
                                    and not pd.api.types.is_numeric_dtype(users[c])
                                    and not pd.api.types.is_datetime64_any_dtype(users[c])]
        cols = [c for c in user_feature_columns if c != "user_id"]
        return cls(
            item_vocab=Vocab.fit(items["item_id"], max_vocab),
            user_vocab=Vocab.fit(users["user_id"], max_vocab),
            category_vocab=Vocab.fit(items["category"]),
            price_edges=edges,
            user_features={c: Vocab.fit(users[c]) for c in cols},
            history_len=history_len,
            profile_len=profile_len,
            event_weights=dict(event_weights or EVENT_WEIGHTS),
            half_life_days=half_life_days,
        )

    def to_json(self) -> str:
        d = {"item_vocab": self.item_vocab.to_dict(), "user_vocab": self.user_vocab.to_dict(),
             "category_vocab": self.category_vocab.to_dict(), "price_edges": self.price_edges,
             "user_features": {k: v.to_dict() for k, v in self.user_features.items()},
             "history_len": self.history_len, "profile_len": self.profile_len, "event_weights": self.event_weights,
             "half_life_days": self.half_life_days}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        d = json.loads(text)
        return cls(item_vocab=Vocab(**d["item_vocab"]), user_vocab=Vocab(**d["user_vocab"]),
                   category_vocab=Vocab(**d["category_vocab"]), price_edges=d["price_edges"],
                   user_features={k: Vocab(**v) for k, v in d["user_features"].items()},
                   history_len=d["history_len"], profile_len=d.get("profile_len", 0),
                   event_weights=d.get("event_weights", dict(EVENT_WEIGHTS)),
                   half_life_days=d.get("half_life_days", 0.0))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls.from_json(path.read_text())

    # ---------------------------------------------------------------- encoders

    def price_bucket(self, price: np.ndarray) -> np.ndarray:
        p = np.asarray(price, float)
        b = 1 + np.searchsorted(np.asarray(self.price_edges), p, side="right")
        return np.where(np.isnan(p), PAD, b).astype(np.int64)

    def encode_items(self, items: pd.DataFrame) -> dict[str, np.ndarray]:
        """Item-tower inputs for catalog rows.  each (N,)"""
        return {"item": self.item_vocab.encode(items["item_id"]),
                "category": self.category_vocab.encode(items["category"]),
                "price": self.price_bucket(items["price"].to_numpy(float))}

    def encode_user_features(self, user_ids: np.ndarray | list, users: pd.DataFrame | None) -> np.ndarray:
        """(N, F) indices of the categorical user features (OOV for unknown users)."""
        n = len(user_ids)
        if not self.user_features:
            return np.zeros((n, 0), np.int64)
        if users is None:
            return np.full((n, len(self.user_features)), OOV, np.int64)
        rows = users.set_index("user_id").reindex(pd.Index(user_ids).astype(str))
        return np.stack([v.encode(rows[c].to_numpy()) for c, v in self.user_features.items()], axis=1)

    def item_index_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Catalog rows -> item vocabulary indices; rows past the vocabulary (products added after the
        model was trained: live through the admin API, or a catalog grown since) -> OOV, which the
        model has an embedding for, instead of an index past the end of its table."""
        rows = np.asarray(rows, np.int64)
        return np.where(rows < len(self.item_vocab.values), Vocab.index_of_row(rows), OOV)

    def user_tower_feed(self, user: np.ndarray, features: np.ndarray, histories: list[np.ndarray],
                        profiles: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        """The user tower's inputs for B users: vocabulary indices (B,), feature indices (B, F), each
        user's recent catalog rows, most recent first, cut to ``history_len`` and 0-padded -> (B, L),
        and each user's profile (catalog rows, weights) cut to ``profile_len`` -> (B, P), (B, P).
        Serving and bundle assembly both feed ``user_tower.onnx`` through this."""
        L, P, B = self.history_len, max(self.profile_len, 1), len(histories)
        h = np.zeros((B, L), np.int64)  # (B, L)
        for j, rows in enumerate(histories):
            n = min(L, len(rows))
            h[j, :n] = self.item_index_of_rows(rows[:n])
        prof, w = np.zeros((B, P), np.int64), np.zeros((B, P), np.float32)  # (B, P)
        for j, (rows, wt) in enumerate(profiles):
            n = min(P, len(rows))
            prof[j, :n], w[j, :n] = self.item_index_of_rows(rows[:n]), wt[:n]
        return {"user": np.asarray(user, np.int64), "features": np.asarray(features, np.int64), "history": h,
                "profile": prof, "profile_weight": w}

    def user_profiles(self, events: pd.DataFrame, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Long-term profiles of ``user_ids`` from their events (user_id, item_id, event, ts): each
        user's ``profile_len`` most recently touched distinct items as vocabulary indices (U, P),
        0-padded, and their weights (U, P): Σ over the item's events of event weight ·
        0.5^(days before the user's last event / half_life_days). Unknown items are dropped."""
        P, U = self.profile_len, len(user_ids)
        idx, w = np.zeros((U, P), np.int64), np.zeros((U, P), np.float32)
        if P == 0:  # a model without a profile: nothing to store or feed
            return idx, w
        u = pd.Index(user_ids).get_indexer(events["user_id"])
        rows = self.item_vocab.encode_rows(events["item_id"])
        keep = (u >= 0) & (rows >= 0)
        if not keep.any():
            return idx, w
        ev = pd.DataFrame({"u": u[keep], "row": rows[keep], "ts": events["ts"].to_numpy()[keep],
                           "w": events["event"].astype(str).map(self.event_weights).fillna(1.0).to_numpy()[keep]})
        if self.half_life_days > 0:
            age = (ev.groupby("u")["ts"].transform("max") - ev["ts"]).dt.total_seconds().to_numpy() / 86400
            ev["w"] *= 0.5 ** (age / self.half_life_days)
        g = ev.groupby(["u", "row"], sort=False).agg(w=("w", "sum"), ts=("ts", "max")).reset_index()
        g = g.sort_values(["u", "ts", "row"], ascending=[True, False, True], kind="stable")
        rank = g.groupby("u").cumcount().to_numpy()
        g = g[rank < P]
        rank = rank[rank < P]
        idx[g["u"].to_numpy(), rank] = Vocab.index_of_row(g["row"].to_numpy())
        w[g["u"].to_numpy(), rank] = g["w"].to_numpy(np.float32)
        return idx, w

    def encode_history(self, item_ids_recent_first: list[list[str]]) -> np.ndarray:
        """Ragged lists of item ids (most recent first) -> (N, L) indices, 0-padded, truncated."""
        L = self.history_len
        out = np.zeros((len(item_ids_recent_first), L), np.int64)
        for i, ids in enumerate(item_ids_recent_first):
            ids = list(ids)[:L]
            if ids:
                out[i, : len(ids)] = self.item_vocab.encode(ids)
        return out


def stored_profiles(states: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(catalog rows, weights) per user from a bundle's users table (``profile``, ``profile_w``; empty
    for bundles made before profiles existed)."""
    if "profile" not in states:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * len(states)
    return [(np.asarray(r, np.int64), np.asarray(w, np.float32)) for r, w in zip(states["profile"],
                                                                                 states["profile_w"], strict=True)]


def history_matrix(user_codes: np.ndarray, item_idx: np.ndarray, L: int) -> np.ndarray:
    """For events sorted by (user, time): the user's previous L items before each event, most
    recent first, 0-padded.  (N,) (N,) -> (N, L)"""
    n = len(user_codes)
    H = np.zeros((n, L), np.int64)
    for k in range(1, L + 1):
        same = np.zeros(n, bool)
        same[k:] = user_codes[k:] == user_codes[:-k]
        H[k:, k - 1] = np.where(same[k:], item_idx[:-k], PAD)
    return H


def last_items(events: pd.DataFrame, L: int) -> pd.Series:
    """Each user's last L item ids (most recent first) from an events table sorted by time."""
    ev = events.sort_values(["user_id", "ts"], kind="stable")
    tail = ev.groupby("user_id", sort=False).tail(L)
    return tail.groupby("user_id", sort=False)["item_id"].agg(lambda s: list(s)[::-1])
