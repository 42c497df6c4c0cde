"""What a shopper may come back to, ranked: the lists behind the `continue` and `buy-again`
placements (issue 30), from the shopper's own events. Plain functions over an events table
(user_id, item_id, event ∈ view | cart | purchase, ts); ages in days before each shopper's ``now``.

- continue: items viewed or carted and not bought since, ranked by intent — a logistic model of
  "touched again in the next period" on recency, frequency and an open cart, fitted on the data
  (:func:`fit_intent`); the natural baseline is the most recent first.
- buy-again: items the shopper bought whose product is re-bought at a typical interval (the median
  gap between one shopper's purchases of it, :func:`repurchase_intervals`; nothing for one-off
  products), the most due first; the natural baseline is the most often bought first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FEATURES = ("log_age_days", "log_touches", "open_cart", "views_last_day")


def touches(events: pd.DataFrame, now: pd.Series) -> pd.DataFrame:
    """Per (user_id, item_id) touched before the shopper's ``now`` (a Series indexed by user_id):
    views, carts and purchases, days since the last touch and the last purchase, whether a cart is
    open (carted after the last purchase), and the features of :data:`FEATURES`."""
    e = events.assign(user_id=events["user_id"].astype(str), item_id=events["item_id"].astype(str))
    age = (e["user_id"].map(now) - e["ts"]).dt.total_seconds() / 86400
    e, age = e[age > 0], age[age > 0]
    e = e.assign(age=age, view=e["event"] == "view", cart=e["event"] == "cart", buy=e["event"] == "purchase")
    g = e.groupby(["user_id", "item_id"])
    t = g.agg(views=("view", "sum"), carts=("cart", "sum"), buys=("buy", "sum"), age=("age", "min"))
    t["buy_age"] = e[e["buy"]].groupby(["user_id", "item_id"])["age"].min().reindex(t.index)
    t["cart_age"] = e[e["cart"]].groupby(["user_id", "item_id"])["age"].min().reindex(t.index)
    t["open_cart"] = (t["cart_age"].notna() & (t["buy_age"].isna() | (t["cart_age"] < t["buy_age"]))).astype(float)
    t["log_age_days"] = np.log1p(t["age"])
    t["log_touches"] = np.log1p(t["views"] + t["carts"])
    t["views_last_day"] = e[e["view"] & (e["age"] < 1)].groupby(["user_id", "item_id"]).size().reindex(
        t.index, fill_value=0).clip(upper=5)
    return t.reset_index()


def open_items(t: pd.DataFrame) -> pd.DataFrame:
    """Touched and not bought since the last touch: what `continue` may show."""
    return t[t["buy_age"].isna() | (t["buy_age"] > t["age"])]


def fit_intent(history: pd.DataFrame, following: pd.DataFrame, now: pd.Series) -> np.ndarray:
    """Logistic coefficients (intercept first, then :data:`FEATURES`) of "an open item is touched again
    in ``following``", from the shoppers' ``history`` up to their ``now``."""
    t = open_items(touches(history, now))
    again = set(zip(following["user_id"].astype(str), following["item_id"].astype(str), strict=True))
    y = np.array([(u, i) in again for u, i in zip(t["user_id"], t["item_id"], strict=True)], float)
    return _logistic(_design(t), y)


def _design(t: pd.DataFrame) -> np.ndarray:
    """(N, 1 + F): an intercept column, then :data:`FEATURES`."""
    return np.column_stack([np.ones(len(t)), t[list(FEATURES)].to_numpy(float)])


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Newton's method on the L2-penalised log-likelihood (the intercept unpenalised): stays finite
    when a feature is constant or separates the labels, where a plain fit has no optimum."""
    w = np.zeros(x.shape[1])
    pen = np.full(x.shape[1], l2)
    pen[0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + pen * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(pen + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _pages(t: pd.DataFrame, score: np.ndarray, users: Sequence[str], k: int) -> list[list[str]]:
    t = t.assign(score=score).sort_values(["user_id", "score", "item_id"], ascending=[True, False, True],
                                          kind="stable")
    per = t.groupby("user_id")["item_id"].agg(list)
    return [per.get(u, [])[:k] for u in users]


def continue_pages(t: pd.DataFrame, users: Sequence[str], k: int, coef: np.ndarray) -> list[list[str]]:
    """Each shopper's open items (touched, not bought since), the likeliest to be touched again first.
    ``t``: :func:`touches` of their events."""
    t = open_items(t)
    return _pages(t, _design(t) @ coef, users, k)


def most_recent_pages(t: pd.DataFrame, users: Sequence[str], k: int) -> list[list[str]]:
    """The baseline of `continue`: open items, the most recently touched first."""
    t = open_items(t)
    return _pages(t, -t["age"].to_numpy(), users, k)


def repurchase_intervals(events: pd.DataFrame, min_gaps: int = 3, category: pd.Series | None = None) -> pd.Series:
    """item_id -> median days between one shopper's consecutive purchases of it (a day apart at
    least), for items with at least ``min_gaps`` such gaps in the data; with ``category`` (item_id ->
    category), every other item of a category with that many gaps gets the category's median. A
    product of a category nobody re-buys gets none (one-off products)."""
    b = events[events["event"] == "purchase"].assign(user_id=lambda d: d["user_id"].astype(str),
                                                     item_id=lambda d: d["item_id"].astype(str))
    b = b.sort_values(["user_id", "item_id", "ts"], kind="stable")
    gap = b.groupby(["user_id", "item_id"])["ts"].diff().dt.total_seconds() / 86400
    have = gap >= 1.0  # a second purchase within a day is the same basket twice, not a re-purchase
    g = gap[have].groupby(b.loc[have, "item_id"])
    own = g.median()[g.size() >= min_gaps]
    if category is None:
        return own
    cats = b.loc[have, "item_id"].map(category)
    c = gap[have].groupby(cats)
    per_cat = c.median()[c.size() >= min_gaps]
    fallback = category[category.isin(per_cat.index)].map(per_cat)
    return pd.concat([own, fallback[~fallback.index.isin(own.index)]])


def buy_again_pages(t: pd.DataFrame, users: Sequence[str], k: int, intervals: pd.Series) -> list[list[str]]:
    """Each shopper's bought items that are re-bought at an interval, the most due first (elapsed time
    over the interval closest to 1, on a log scale; overdue before early at equal distance)."""
    t = t[t["buy_age"].notna() & t["item_id"].isin(intervals.index)]
    ratio = t["buy_age"].to_numpy() / t["item_id"].map(intervals).to_numpy()
    score = -np.abs(np.log(np.maximum(ratio, 1e-3))) + 1e-3 * (ratio > 1)
    return _pages(t, score, users, k)


def most_bought_pages(t: pd.DataFrame, users: Sequence[str], k: int) -> list[list[str]]:
    """The baseline of `buy-again`: the shopper's bought items, the most often bought first (then the latest)."""
    t = t[t["buys"] > 0]
    return _pages(t, t["buys"].to_numpy() - 1e-6 * t["buy_age"].to_numpy(), users, k)
