"""The placements' own lists (issue 30, docs/serving.md "Placements"), one module for both sides:
what a shopper may come back to and what goes with a cart, scored from the shopper's touches — every
item they viewed, carted or bought, with its recency, counts and open cart — by models the nightly
job fits (recsys/repeat_sources.py) and the bundle carries (``placements.npz``).

    continue    open items (touched, not bought since), by the chance they are bought next
    buy-again   bought items with a learned re-purchase interval, by the chance they are re-bought next
    home        the ranker's discovery list merged with the shopper's touched items: each seen item
                by its own chance of being touched next (a logistic model), each discovery item by
                the chance an item at its rank is (the ranker's held-out hit rate by rank), the
                likelier first — so seen items take a slot only where the data says they earn it
    cart        complements: products bought with the cart's in the same session more often than
                their popularity explains, outside the cart's categories (not near-duplicates)

numpy only: serving imports this; one feature function (:func:`design`) for fitting and serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.mapped import open_npz

# The touch features the three logistic models read, by name (an intercept goes first).
FEATURES = ("log_age_days", "log_touches", "open_cart", "views_last_day", "log_buys", "due", "due_sq", "has_interval",
            "log_rank")
MODELS = ("continue", "buy_again", "home")
MAX_TOUCHES = 50  # distinct items per shopper kept in the bundle (the most recent)
TOUCH_COLUMNS = ("touch_rows", "touch_age", "touch_n", "touch_cart", "touch_views_day", "touch_buys", "touch_buy_age")


@dataclass
class Touched:
    """One shopper's touched items (parallel arrays, one entry per distinct item): ages in days
    before the request; ``buy_age`` NaN for an item never bought."""

    rows: np.ndarray  # (N,) int64 catalog rows
    age: np.ndarray  # (N,) float32 days since the last touch
    n: np.ndarray  # (N,) float32 views + carts
    cart: np.ndarray  # (N,) float32 1: carted after the last purchase (an open cart)
    views_day: np.ndarray  # (N,) float32 views in the last day (at most 5)
    buys: np.ndarray  # (N,) float32 purchases
    buy_age: np.ndarray  # (N,) float32 days since the last purchase, NaN: never bought

    @classmethod
    def empty(cls) -> Touched:
        z = np.zeros(0, np.float32)
        return cls(np.zeros(0, np.int64), z, z, z, z, z, z)

    def __len__(self) -> int:
        return len(self.rows)

    def with_live(self, seen: np.ndarray, bought: np.ndarray, carted: np.ndarray | None = None) -> Touched:
        """Events since the bundle (rows viewed or carted, rows bought, rows in a cart left open), as
        touches of age 0."""
        carted = np.zeros(0, np.int64) if carted is None else carted
        if not len(seen) and not len(bought) and not len(carted):
            return self
        rows = np.union1d(np.union1d(np.union1d(self.rows, seen), bought), carted).astype(np.int64)
        at = {r: j for j, r in enumerate(rows.tolist())}
        idx = np.array([at[r] for r in self.rows.tolist()], np.int64)

        def put(x: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(len(rows), fill, np.float32)
            out[idx] = x
            return out

        t = Touched(rows, put(self.age, 0.0), put(self.n, 0.0), put(self.cart, 0.0), put(self.views_day, 0.0),
                    put(self.buys, 0.0), put(self.buy_age, np.nan))
        for r in seen.tolist():
            j = at[r]
            t.age[j], t.n[j], t.views_day[j] = 0.0, t.n[j] + 1, min(t.views_day[j] + 1, 5)
        for r in bought.tolist():
            j = at[r]
            t.age[j], t.buys[j], t.buy_age[j], t.cart[j] = 0.0, t.buys[j] + 1, 0.0, 0.0
        for r in carted.tolist():  # carted after any purchase of it: the cart is open
            j = at[r]
            t.age[j], t.cart[j] = 0.0, 1.0
        return t


def member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.isin(a, b)`` for the short lists of one request (a shopper's touches, a page's candidates),
    where one broadcast comparison costs a few µs against np.isin's tens (it sorts both)."""
    if len(a) * len(b) > 1 << 16:
        return np.isin(a, b)
    return (np.asarray(a)[:, None] == np.asarray(b)[None, :]).any(1) if len(b) else np.zeros(len(a), bool)


def recency_rank(age: np.ndarray) -> np.ndarray:
    """Each of one shopper's touched items' place among them, the most recent 0."""
    r = np.empty(len(age), np.float64)
    r[np.argsort(age, kind="stable")] = np.arange(len(age))
    return r


def design(age: np.ndarray, n: np.ndarray, cart: np.ndarray, views_day: np.ndarray, buys: np.ndarray,
           buy_age: np.ndarray, interval: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(N, 1 + len(FEATURES)): an intercept, then the features, for touches, each touched item's
    re-purchase interval (NaN: none) and its place among the shopper's touches by recency
    (:func:`recency_rank`: a "recently viewed" list is read from the top). ``due`` = log(days since the
    last purchase / interval), clipped to ±3: 0 when a re-purchase is due, negative before, positive after."""
    bought = np.isfinite(buy_age)
    has = bought & np.isfinite(interval)
    due = np.zeros(len(age), np.float64)
    due[has] = np.clip(np.log(np.maximum(buy_age[has], 1e-3) / np.maximum(interval[has], 1e-3)), -3, 3)
    return np.column_stack([np.ones(len(age)), np.log1p(np.maximum(age, 0)), np.log1p(n), cart, views_day,
                            np.log1p(buys), due, due**2, has.astype(np.float64), np.log1p(rank)])


def probability(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ coef, -30, 30)))


@dataclass
class PlacementModels:
    """``placements.npz``: the three logistic models, the ranker's hit rate by rank, each product's
    re-purchase interval and its complements (ragged, best first)."""

    coef: dict[str, np.ndarray]  # model name -> (1 + len(FEATURES),)
    hit_rate: np.ndarray  # (R,) chance the discovery item at rank r is touched next
    interval: np.ndarray  # (I,) float32 days; NaN: not re-bought (one-off product)
    comp_off: np.ndarray  # (I + 1,) int64 offsets into comp_rows
    comp_rows: np.ndarray  # (M,) int64 complement rows, each product's best first
    comp_score: np.ndarray  # (M,) float32 their lift

    def save(self, path: Path) -> None:
        np.savez(path, **{f"coef_{k}": v for k, v in self.coef.items()}, hit_rate=self.hit_rate,
                 interval=self.interval, comp_off=self.comp_off, comp_rows=self.comp_rows, comp_score=self.comp_score)

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> PlacementModels:
        z = open_npz(path, mmap=mmap)
        coef = {m: np.asarray(z[f"coef_{m}"], np.float64) for m in MODELS}
        for m, c in coef.items():
            if c.shape != (1 + len(FEATURES),):
                raise ValueError(f"{path}: model {m} has {c.shape[0]} coefficients, this code reads "
                                 f"{1 + len(FEATURES)}")
        return cls(coef, np.asarray(z["hit_rate"], np.float64), z["interval"], z["comp_off"], z["comp_rows"],
                   z["comp_score"])

    def append_item(self) -> None:
        """A product added live: no interval, no complements yet."""
        self.interval = np.append(self.interval, np.float32(np.nan))
        self.comp_off = np.append(self.comp_off, self.comp_off[-1])

    def intervals(self, rows: np.ndarray) -> np.ndarray:
        """(N,) float64 re-purchase interval of each row; NaN: none (a one-off product, or past the table)."""
        inside = rows < len(self.interval)
        return np.where(inside, self.interval[np.where(inside, rows, 0)], np.nan).astype(np.float64)

    def scores(self, model: str, t: Touched, rank: np.ndarray | None = None) -> np.ndarray:
        """(N,) each touched item's chance under ``model``; ``rank``: their recency ranks when ``t``
        holds several shoppers' touches (None: one shopper's, ranked here)."""
        if not len(t):
            return np.zeros(0)
        rank = recency_rank(t.age) if rank is None else rank
        x = design(t.age, t.n, t.cart, t.views_day, t.buys, t.buy_age, self.intervals(t.rows), rank)
        return probability(self.coef[model], x)

    def continue_rows(self, t: Touched) -> tuple[np.ndarray, np.ndarray]:
        """Open items (never bought, or touched after the last purchase), likeliest bought next first."""
        keep = ~np.isfinite(t.buy_age) | (t.buy_age > t.age)
        return _ordered(t.rows[keep], self.scores("continue", t)[keep])

    def buy_again_rows(self, t: Touched) -> tuple[np.ndarray, np.ndarray]:
        """Bought items with an interval, likeliest re-bought next first; nothing for one-off products."""
        keep = np.isfinite(t.buy_age) & np.isfinite(self.intervals(t.rows))
        return _ordered(t.rows[keep], self.scores("buy_again", t)[keep])

    def home_rows(self, t: Touched, ranked: np.ndarray, show: np.ndarray | None = None,
                  chance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The discovery list ``ranked`` (the ranker's order, seen items taken out) merged with the
        touched items (those ``show`` marks, all when None) by chance of being touched next (``chance``:
        already computed, e.g. once for every stored shopper). Returns rows, chances and which are repeats."""
        explore = ranked[~member(ranked, t.rows)] if len(t) else ranked
        r = np.minimum(np.arange(len(explore)), len(self.hit_rate) - 1)
        p_explore = self.hit_rate[r] if len(self.hit_rate) else np.zeros(len(explore))
        show = np.ones(len(t), bool) if show is None else show
        seen = t.rows[show]
        p_repeat = (self.scores("home", t) if chance is None else chance)[show]
        rows = np.concatenate([seen, explore])
        p = np.concatenate([p_repeat, p_explore])
        by = np.argsort(-p, kind="stable")  # ties: the seen item first (it came first)
        repeat = np.zeros(len(rows), bool)
        repeat[: len(seen)] = True
        return rows[by], p[by], repeat[by]

    def complements(self, cart: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Products bought with the ``cart``'s rows, by lift (summed over the cart), outside the cart's
        categories and not in the cart."""
        cart = cart[cart < len(self.comp_off) - 1]
        if not len(cart):
            return np.zeros(0, np.int64), np.zeros(0)
        parts = [(self.comp_rows[self.comp_off[c] : self.comp_off[c + 1]],
                  self.comp_score[self.comp_off[c] : self.comp_off[c + 1]]) for c in cart.tolist()]
        rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
        score = np.concatenate([p[1] for p in parts]).astype(np.float64)
        if not len(rows):
            return rows, score
        uniq, inv = np.unique(rows, return_inverse=True)
        total = np.bincount(inv, weights=score)
        keep = ~np.isin(uniq, cart) & ~np.isin(categories[uniq], categories[cart])
        return _ordered(uniq[keep], total[keep])


def _ordered(rows: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    by = np.lexsort((rows, -score))  # ties: the lower row (deterministic)
    return rows[by], score[by]
