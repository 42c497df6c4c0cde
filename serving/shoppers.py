"""The known shoppers of a bundle (``users.parquet``): each one's user-tower inputs, stored history
(latest first), everything seen, purchases and long-term profile; and the request's view of a
shopper: the stored state with this session's clicks in front."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.jit import ragged
from recsys.features import FeatureSpec, stored_profiles
from recsys.placements import TOUCH_COLUMNS, PlacementModels, Touched

_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False


@dataclass
class Shopper:
    """One request's shopper: the stored state (nothing for an unknown one) with the session's clicks."""

    row: int | None  # their row in the bundle's users table; None: not a known shopper
    history: np.ndarray  # catalog rows, most recent first: session clicks, then the stored history
    seen: np.ndarray  # every row they touched (distinct; order irrelevant)
    purchased: np.ndarray  # rows they bought (empty when the request keeps purchases)
    profile: tuple[np.ndarray, np.ndarray]  # the long-term profile (rows, weights), session clicks in front
    touched: Touched  # what the placements read: each touched item's counts and recency, live events included
    stored: bool = False  # touched is the bundle's, untouched by this request's clicks or live events


class Shoppers:
    def __init__(self, users: pd.DataFrame, spec: FeatureSpec) -> None:
        ids = users["user_id"].astype(str)
        self.row_of = {u: i for i, u in enumerate(ids)}
        self.vocab_index = spec.user_vocab.encode(ids)  # (U,) once, not per request
        self.features = spec.encode_user_features(ids.to_numpy(), users)  # (U, F)
        self.history = [np.asarray(h, np.int64) for h in users["history"]]  # latest first (last 20 rows)
        self.seen = [np.asarray(h, np.int64) for h in users["seen"]]
        self.purchased = [np.asarray(h, np.int64) for h in users["purchased"]]
        self.profiles = stored_profiles(users)  # (rows, weights) per user: the long-term profile
        self.session_weight = float(spec.event_weights.get("view", 1.0))  # a click is a view
        self.n_features = len(spec.user_features)
        # each shopper's touches (recsys/placements.py), flat with offsets (a request slices them, no copy);
        # a bundle from before the placements has none
        self.touch_off, self.touch_cols = None, {}
        if all(c in users for c in TOUCH_COLUMNS):
            for c in TOUCH_COLUMNS:  # every column has the rows' lengths: one set of offsets
                dtype = np.int64 if c == "touch_rows" else np.float32
                self.touch_cols[c], self.touch_off = ragged(list(users[c]), dtype)
        self._chance: dict[tuple, np.ndarray] = {}  # (models, their home coefficients) -> every stored touch's chance

    def __len__(self) -> int:
        return len(self.row_of)

    def with_history(self, limit: int) -> list[str]:
        """The first ``limit`` known shoppers (in the users table's order) who have a history."""
        out = []
        for u, i in self.row_of.items():
            if len(self.history[i]):
                out.append(u)
                if len(out) >= limit:
                    break
        return out

    def touched(self, u: int | None) -> Touched:
        if u is None or self.touch_off is None:
            return Touched.empty()
        a, b = self.touch_off[u], self.touch_off[u + 1]
        return Touched(*(self.touch_cols[c][a:b] for c in TOUCH_COLUMNS))

    def home_chance(self, u: int, models: PlacementModels) -> np.ndarray:
        """The ``home`` model's chance of each of shopper ``u``'s stored touches, from one pass over every
        shopper's computed at the first request (the touches are stored latest first, so an item's place
        in its shopper's slice is its recency rank)."""
        key = (id(models), models.coef["home"].tobytes())
        got = self._chance.get(key)
        if got is None:
            n = np.diff(self.touch_off)
            rank = np.arange(self.touch_off[-1]) - np.repeat(self.touch_off[:-1], n)
            flat = Touched(*(self.touch_cols[c] for c in TOUCH_COLUMNS))
            self._chance = {key: models.scores("home", flat, rank=rank)}  # one set of models at a time
            got = self._chance[key]
        return got[self.touch_off[u] : self.touch_off[u + 1]]

    def resolve(self, user_id: str | None, session: np.ndarray, *, keep_purchased: bool = False,
                also_purchased: np.ndarray | None = None, bought_live: np.ndarray | None = None,
                carted_live: np.ndarray | None = None) -> Shopper:
        """The shopper a request names (``user_id`` may be unknown or None) with ``session``'s clicks
        (catalog rows, most recent first) in front of their history; ``also_purchased``: rows bought
        since the bundle (its live events) and out of the page; ``bought_live``: the same rows, for the
        touches, whether or not the request keeps purchases; ``carted_live``: rows in a cart left open
        since the bundle."""
        u = self.row_of.get(user_id) if user_id is not None else None
        history = self.history[u] if u is not None else _NONE
        seen = self.seen[u] if u is not None else _NONE
        if len(session):  # fresh clicks first, then the stored history without repeats
            history = np.concatenate([session, history[~np.isin(history, session, kind="table")]])
            seen = np.union1d(seen, session)
        purchased = self.purchased[u] if (u is not None and not keep_purchased) else _NONE
        if also_purchased is not None and len(also_purchased):
            purchased = np.union1d(purchased, also_purchased)
        live = bought_live if bought_live is not None else _NONE
        carts = carted_live if carted_live is not None else _NONE
        stored = not len(session) and not len(live) and not len(carts)
        touched = self.touched(u) if stored else self.touched(u).with_live(
            np.asarray(session, np.int64), np.asarray(live, np.int64), np.asarray(carts, np.int64))
        return Shopper(u, history, seen, purchased, self.profile(u, session), touched, stored and u is not None)

    def profile(self, u: int | None, session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The long-term profile (rows, weights) of user row ``u`` (None: nobody) with this session's
        clicks in front, each weighing one view more."""
        rows, w = self.profiles[u] if u is not None else (session[:0], np.zeros(0, np.float32))
        if not len(session):
            return rows, w
        old = np.isin(rows, session)
        extra = np.zeros(len(session), np.float32)
        if old.any():  # clicks on items already in the profile keep their earlier weight too
            pos = {r: i for i, r in enumerate(session.tolist())}
            for r, x in zip(rows[old].tolist(), w[old].tolist(), strict=True):
                extra[pos[r]] += x
        return (np.concatenate([session, rows[~old]]),
                np.concatenate([extra + self.session_weight, w[~old]]).astype(np.float32))

    def tower_inputs(self, user_ids: list[str | None], oov: int) -> tuple[np.ndarray, np.ndarray]:
        """(B,) user-vocabulary ids and (B, F) feature codes; unknown shoppers get ``oov`` for both."""
        ids = np.full(len(user_ids), oov, np.int64)
        feats = np.full((len(user_ids), self.n_features), oov, np.int64)
        for j, u in enumerate(user_ids):
            r = self.row_of.get(u) if u is not None else None
            if r is not None:
                ids[j], feats[j] = self.vocab_index[r], self.features[r]
        return ids, feats
