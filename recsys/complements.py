"""Complements for the `cart` placement (recsys/placements.py ``complements``): products bought in
one session with each product more often than their popularity explains, from an events table
(user_id, item_id, event, ts). Plain functions, pandas and scipy.sparse.

    baskets          one shopper's purchases less than an hour apart
    co_purchases     every ordered pair bought in one basket: count and lift over popularity
    complement_table each product's best complements outside its category: its own pairs' lift, plus
                     (with product vectors) what its look-alikes were bought with — a product seldom
                     bought still gets the complements of the products it resembles
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

SESSION_S = 3600  # purchases of one shopper this close are one basket
COMPLEMENTS = 20  # complements kept per product in the bundle
NEIGHBOURS = 20  # look-alikes that lend a product their complements
BORROWED = 0.1  # weight of a look-alike's complement (times its cosine) against the product's own


def baskets(events: pd.DataFrame, session_s: float = SESSION_S) -> pd.DataFrame:
    """Purchases (user_id, item_id, ts, basket): one shopper's purchases less than ``session_s`` apart
    share a basket number."""
    b = events[events["event"] == "purchase"].assign(user_id=lambda d: d["user_id"].astype(str),
                                                     item_id=lambda d: d["item_id"].astype(str))
    b = b.sort_values(["user_id", "ts"], kind="stable")
    gap = b.groupby("user_id")["ts"].diff().dt.total_seconds()
    return b.assign(basket=(gap.isna() | (gap >= session_s)).cumsum())[["user_id", "item_id", "ts", "basket"]]


def co_purchases(events: pd.DataFrame, session_s: float = SESSION_S) -> pd.DataFrame:
    """(item_id, other, count, lift) over every ordered pair of distinct products bought in one
    basket; lift = count / (expected + 1), expected = n(item) · n(other) / purchases: how much more
    often they go together than their popularity alone explains (the +1 keeps a single chance
    co-purchase of two rare products from topping every list)."""
    b = baskets(events, session_s).drop_duplicates(["basket", "item_id"])
    m = b.merge(b, on="basket", suffixes=("", "_o"))
    m = m[m["item_id"] != m["item_id_o"]]
    pairs = m.groupby(["item_id", "item_id_o"]).size().rename("count").reset_index()
    n = b["item_id"].value_counts()
    expected = pairs["item_id"].map(n).to_numpy(float) * pairs["item_id_o"].map(n).to_numpy(float) / max(len(b), 1)
    pairs["lift"] = pairs["count"] / (expected + 1.0)
    return pairs.rename(columns={"item_id_o": "other"})


def complement_pages(pairs: pd.DataFrame, carts: Sequence[Sequence[str]], k: int, by: str,
                     category: pd.Series | None = None) -> list[list[str]]:
    """Each cart's complements, best first by ``by`` ("lift": the placement; "count": co-purchase
    popularity, the baseline), summed over the cart's products; with ``category`` (item_id ->
    category), nothing of the cart's own categories."""
    per = {a: g for a, g in pairs.groupby("item_id")}
    out = []
    for cart in carts:
        parts = [per[a] for a in cart if a in per]
        if not parts:
            out.append([])
            continue
        s = pd.concat(parts).groupby("other")[by].sum()
        s = s[~s.index.isin(set(cart))]
        if category is not None:
            s = s[~s.index.map(category).isin({category.get(a) for a in cart})]
        out.append(list(s.sort_index().sort_values(ascending=False, kind="stable").index[:k]))
    return out


def complement_table(pairs: pd.DataFrame, item_ids: np.ndarray, category: np.ndarray, vectors: np.ndarray | None,
                     *, top: int = COMPLEMENTS, neighbours: int = NEIGHBOURS, borrowed: float = BORROWED
                     ) -> pd.DataFrame:
    """(item_id, other, score): each product's ``top`` complements outside its own category, best
    first. score = own lift + ``borrowed`` · Σ cosine · lift over the ``neighbours`` most similar
    products of its category that have pairs (``vectors``: (I, D) in ``item_ids``' order; None: own
    lift only). ``pairs``: :func:`co_purchases`."""
    n = len(item_ids)
    row_of = pd.Series(np.arange(n), index=pd.Index(item_ids).astype(str))
    p = pairs.assign(a=pairs["item_id"].map(row_of), b=pairs["other"].map(row_of)).dropna(subset=["a", "b"])
    a, b = p["a"].to_numpy(int), p["b"].to_numpy(int)
    own = sparse.csr_matrix((p["lift"].to_numpy(float), (a, b)), shape=(n, n))
    score = own
    cat = pd.factorize(np.asarray(category))[0]
    if vectors is not None and borrowed > 0 and len(a):
        v = np.asarray(vectors, np.float32)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
        anchors = np.unique(a)
        rows, cols, sims = [], [], []
        for c in np.unique(cat):
            mine, lend = np.flatnonzero(cat == c), anchors[cat[anchors] == c]
            if not len(lend):
                continue
            k = min(neighbours + 1, len(lend))
            for s in range(0, len(mine), 4096):
                q = mine[s : s + 4096]
                sim = v[q] @ v[lend].T  # (q, anchors of the category)
                sim[q[:, None] == lend[None, :]] = -np.inf  # a product does not lend to itself
                best = np.argpartition(-sim, k - 1, axis=1)[:, :k]
                val = np.take_along_axis(sim, best, 1)
                ok = np.isfinite(val) & (val > 0)
                rows.append(np.repeat(q, k)[ok.ravel()]), cols.append(lend[best].ravel()[ok.ravel()])
                sims.append(val.ravel()[ok.ravel()])
        if rows:
            w = sparse.csr_matrix((np.concatenate(sims), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
            score = own + borrowed * (w @ own)
    score = score.tocoo()
    t = pd.DataFrame({"a": score.row, "b": score.col, "score": score.data})
    t = t[(cat[t["a"].to_numpy()] != cat[t["b"].to_numpy()]) & (t["a"] != t["b"]) & (t["score"] > 0)]
    t = t.sort_values(["a", "score", "b"], ascending=[True, False, True], kind="stable").groupby("a").head(top)
    ids = np.asarray(item_ids).astype(str)
    return pd.DataFrame({"item_id": ids[t["a"].to_numpy()], "other": ids[t["b"].to_numpy()],
                         "score": t["score"].to_numpy()})
