"""Fitting the placements' models (recsys/placements.py) from an events table (user_id, item_id,
event ∈ view | cart | purchase, ts), and the natural baselines they are measured against (issue 30).
Plain functions; ages in days before each shopper's ``now``.

- touches: per (shopper, item) the counts, recency and open cart the models read (:func:`touches`);
- three logistic models over recsys/placements.py ``FEATURES`` (:func:`fit_models`), fitted on one
  period's touches against the next period's events: ``continue`` (an open item is bought next),
  ``buy_again`` (a bought item with an interval is bought again next), ``home`` (a touched item is
  touched again next);
- re-purchase intervals per product (:func:`repurchase_intervals`; nothing for one-off products);
- and, with recsys/complements.py's table, the bundle's ``placements.npz`` (:func:`bundle_models`).

Baselines: most recent first (continue), most often bought first (buy-again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.complements import co_purchases, complement_table
from recsys.placements import FEATURES, MODELS, PlacementModels, design


def touches(events: pd.DataFrame, now: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """Per (user_id, item_id) touched before the shopper's ``now`` (a Series indexed by user_id, or one
    time for everyone): views, carts and purchases, ``n`` (views + carts), days since the last touch
    (``age``) and the last purchase (``buy_age``, NaN: never), whether a cart is open (carted after the
    last purchase), views in the last day (at most 5) and the item's place among the shopper's by
    recency (``rank``, the latest 0)."""
    e = events.assign(user_id=events["user_id"].astype(str), item_id=events["item_id"].astype(str))
    ref = e["user_id"].map(now) if isinstance(now, pd.Series) else now
    age = (ref - e["ts"]).dt.total_seconds() / 86400
    e, age = e[age >= 0], age[age >= 0]
    e = e.assign(age=age, view=e["event"] == "view", cart=e["event"] == "cart", buy=e["event"] == "purchase")
    g = e.groupby(["user_id", "item_id"])
    t = g.agg(views=("view", "sum"), carts=("cart", "sum"), buys=("buy", "sum"), age=("age", "min"))
    t["buy_age"] = e[e["buy"]].groupby(["user_id", "item_id"])["age"].min().reindex(t.index)
    t["cart_age"] = e[e["cart"]].groupby(["user_id", "item_id"])["age"].min().reindex(t.index)
    t["open_cart"] = (t["cart_age"].notna() & (t["buy_age"].isna() | (t["cart_age"] < t["buy_age"]))).astype(float)
    t["n"] = (t["views"] + t["carts"]).astype(float)
    t["views_last_day"] = e[e["view"] & (e["age"] < 1)].groupby(["user_id", "item_id"]).size().reindex(
        t.index, fill_value=0).clip(upper=5).astype(float)
    t = t.reset_index()
    t["rank"] = t.groupby("user_id")["age"].rank(method="first") - 1  # recsys/placements.py recency_rank
    return t


def open_items(t: pd.DataFrame) -> pd.DataFrame:
    """Touched and not bought since the last touch: what `continue` may show."""
    return t[t["buy_age"].isna() | (t["buy_age"] > t["age"])]


def design_of(t: pd.DataFrame, intervals: pd.Series) -> np.ndarray:
    """recsys/placements.py ``design`` of a :func:`touches` table; ``intervals``: item_id -> days."""
    iv = t["item_id"].map(intervals).to_numpy(float)
    return design(t["age"].to_numpy(float), t["n"].to_numpy(float), t["open_cart"].to_numpy(float),
                  t["views_last_day"].to_numpy(float), t["buys"].to_numpy(float), t["buy_age"].to_numpy(float), iv,
                  t["rank"].to_numpy(float))


def candidates(t: pd.DataFrame, model: str, intervals: pd.Series) -> pd.DataFrame:
    """The touches a model scores: open items (continue), bought items with an interval (buy_again), all (home)."""
    if model == "continue":
        return open_items(t)
    if model == "buy_again":
        return t[t["buy_age"].notna() & t["item_id"].isin(intervals.index)]
    return t


def fit_models(history: pd.DataFrame, following: pd.DataFrame, now: pd.Series, intervals: pd.Series
               ) -> dict[str, np.ndarray]:
    """Logistic coefficients (intercept first, then recsys/placements.py ``FEATURES``) of each model,
    from the shoppers' ``history`` up to their ``now`` against what they did in ``following``."""
    t = touches(history, now)
    f = following.assign(user_id=following["user_id"].astype(str), item_id=following["item_id"].astype(str))
    touched = set(zip(f["user_id"], f["item_id"], strict=True))
    bought = set(zip(*(f.loc[f["event"] == "purchase", c] for c in ("user_id", "item_id")), strict=True))
    out = {}
    for model, label in (("continue", bought), ("buy_again", bought), ("home", touched)):
        c = candidates(t, model, intervals)
        y = np.array([(u, i) in label for u, i in zip(c["user_id"], c["item_id"], strict=True)], float)
        out[model] = _logistic(design_of(c, intervals), y)
    return out


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Newton's method on the L2-penalised log-likelihood (the intercept unpenalised): stays finite
    when a feature is constant or separates the labels, where a plain fit has no optimum."""
    w = np.zeros(x.shape[1])
    if not len(x):
        return w
    pen = np.full(x.shape[1], l2)
    pen[0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + pen * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(pen + 1e-6)
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


def model_pages(t: pd.DataFrame, model: str, users: Sequence[str], k: int, coef: np.ndarray,
                intervals: pd.Series) -> list[list[str]]:
    """Each shopper's candidates of ``model``, the likeliest first (what the service serves)."""
    c = candidates(t, model, intervals)
    return _pages(c, design_of(c, intervals) @ coef, users, k)


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


def most_bought_pages(t: pd.DataFrame, users: Sequence[str], k: int) -> list[list[str]]:
    """The baseline of `buy-again`: the shopper's bought items, the most often bought first (then the latest)."""
    t = t[t["buys"] > 0]
    return _pages(t, t["buys"].to_numpy() - 1e-6 * t["buy_age"].to_numpy(), users, k)


def first_event(events: pd.DataFrame) -> pd.Series:
    """user_id -> the time of each shopper's first event: when they come back, the moment a period's
    lists are asked for (what the models are fitted and measured at)."""
    return events.groupby(events["user_id"].astype(str))["ts"].min()


def fit_split(split_dir: Path, category: pd.Series) -> dict[str, list[float]]:
    """The three models fitted on a nightly split (``train`` -> ``valid``: each shopper's state at their
    first validation event against what they did in validation); ``category``: item_id -> category
    (for the interval fallback)."""
    cols = ["user_id", "item_id", "event", "ts"]
    train, valid = (pd.read_parquet(split_dir / f"{p}.parquet", columns=cols) for p in ("train", "valid"))
    coef = fit_models(train, valid, first_event(valid), repurchase_intervals(train, category=category))
    return {m: [float(x) for x in c] for m, c in coef.items()}


def write_fit(path: Path, coef: dict[str, list[float]], hit_rate: list[float]) -> None:
    """``placements.json`` beside the ranker: what the bundle's ``placements.npz`` is assembled from."""
    path.write_text(json.dumps({"features": list(FEATURES), "coef": coef, "hit_rate": hit_rate}, indent=1) + "\n")


def bundle_models(fit: Path, events: pd.DataFrame, items: pd.DataFrame, vectors: np.ndarray | None = None
                  ) -> PlacementModels:
    """``placements.npz`` from ``placements.json`` (the fitted models), the re-purchase intervals and
    complements of all ``events``; ``items`` (item_id, category) in catalog-row order; ``vectors``
    (I, D) in the same order (photo embeddings: look-alikes lend their complements; None: none)."""
    f = json.loads(fit.read_text())
    if tuple(f["features"]) != FEATURES:
        raise ValueError(f"{fit}: models over features {f['features']}, this code computes {list(FEATURES)}")
    ids = items["item_id"].astype(str)
    row_of = pd.Series(np.arange(len(items)), index=ids)
    category = pd.Series(items["category"].to_numpy(), index=ids)
    iv = repurchase_intervals(events, category=category)
    interval = np.full(len(items), np.nan, np.float32)
    at = row_of.reindex(iv.index)
    interval[at.dropna().astype(int).to_numpy()] = iv[at.notna().to_numpy()].to_numpy(np.float32)
    t = complement_table(co_purchases(events), ids.to_numpy(), items["category"].to_numpy(), vectors)
    a = t["item_id"].map(row_of).to_numpy().astype(np.int64)
    b = t["other"].map(row_of).to_numpy().astype(np.int64)
    off = np.concatenate([[0], np.cumsum(np.bincount(a, minlength=len(items)))]).astype(np.int64)
    return PlacementModels({m: np.asarray(f["coef"][m], np.float64) for m in MODELS},
                           np.asarray(f["hit_rate"] or [0.0], np.float64), interval, off, b.astype(np.int64),
                           t["score"].to_numpy(np.float32))
