"""Fitting the placements' models (recsys/repeat_sources.py) on hand-made shoppers: touches, the
logistic models, re-purchase intervals, complements and the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.complements import baskets, co_purchases, complement_pages, complement_table
from recsys.placements import FEATURES
from recsys.repeat_sources import (
    fit_models,
    model_pages,
    most_bought_pages,
    most_recent_pages,
    repurchase_intervals,
    touches,
)

T0 = pd.Timestamp("2026-08-01", tz="UTC")


def _ev(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i, e, T0 + pd.Timedelta(days=d)) for u, i, e, d in rows],
                        columns=["user_id", "item_id", "event", "ts"])


NOW = pd.Series({"u": T0 + pd.Timedelta(days=30)})


def test_touches_count_and_know_an_open_cart() -> None:
    ev = _ev([("u", "a", "view", 1), ("u", "a", "cart", 2), ("u", "b", "view", 3), ("u", "b", "cart", 3),
              ("u", "b", "purchase", 3.1), ("u", "c", "view", 40)])  # day 40 is after now: not counted
    t = touches(ev, NOW).set_index("item_id")
    assert list(t.index) == ["a", "b"]
    assert t.loc["a", "open_cart"] == 1.0 and t.loc["b", "open_cart"] == 0.0
    assert t.loc["a", "age"] == 28 and t.loc["b", "buys"] == 1


def test_continue_shows_open_items_and_the_baseline_orders_by_recency() -> None:
    ev = _ev([("u", "a", "view", 1), ("u", "a", "cart", 2), ("u", "b", "view", 29), ("u", "c", "view", 20),
              ("u", "c", "purchase", 20.1)])
    assert most_recent_pages(touches(ev, NOW), ["u", "nobody"], 5) == [["b", "a"], []]  # c was bought: not open
    coef = np.zeros(1 + len(FEATURES))
    coef[3] = 5.0  # a model that only values an open cart
    assert model_pages(touches(ev, NOW), "continue", ["u"], 5, coef, pd.Series(dtype=float)) == [["a", "b"]]


def test_the_intent_model_learns_that_open_carts_are_bought() -> None:
    rng = np.random.default_rng(0)
    rows, nxt = [], []
    for n in range(400):
        u = f"u{n}"
        for j in range(4):
            rows.append((u, f"{u}-{j}", "view", float(rng.uniform(0, 29))))
        rows.append((u, f"{u}-0", "cart", float(rng.uniform(0, 29))))
        if rng.random() < 0.6:
            nxt.append((u, f"{u}-0", "purchase", 31.0))  # the carted one is bought
        if rng.random() < 0.2:
            nxt.append((u, f"{u}-{rng.integers(1, 4)}", "purchase", 31.0))
    now = pd.Series({f"u{n}": T0 + pd.Timedelta(days=30) for n in range(400)})
    coef = fit_models(_ev(rows), _ev(nxt), now, pd.Series(dtype=float))
    assert coef["continue"][3] > 1.0  # open_cart
    pages = model_pages(touches(_ev(rows), now), "continue", ["u0", "u1"], 1, coef["continue"], pd.Series(dtype=float))
    assert pages == [["u0-0"], ["u1-0"]]


def test_buy_again_needs_a_learned_interval_and_puts_the_most_due_first() -> None:
    hist = _ev([(f"s{n}", "tee", "purchase", d) for n in range(3) for d in (0, 10, 20)]
               + [("s0", "coat", "purchase", 1), ("s1", "coat", "purchase", 2)])
    iv = repurchase_intervals(hist, min_gaps=3)
    assert iv.to_dict() == {"tee": 10.0}  # 6 gaps of 10 days; coat never bought twice by one shopper
    ev = _ev([("u", "tee", "purchase", 20), ("u", "coat", "purchase", 1), ("u", "sock", "purchase", 28),
              ("u", "sock", "purchase", 29)])
    iv = pd.Series({"tee": 10.0, "sock": 30.0})
    coef = np.zeros(1 + len(FEATURES))
    coef[7] = -1.0  # due_sq: the closer to the interval the likelier
    # tee bought 10 days ago at a 10-day interval: due; sock 1 day ago at 30: not yet; coat: no interval
    assert model_pages(touches(ev, NOW), "buy_again", ["u"], 5, coef, iv) == [["tee", "sock"]]
    assert most_bought_pages(touches(ev, NOW), ["u"], 5) == [["sock", "tee", "coat"]]


def test_a_product_without_its_own_gaps_takes_its_category_interval_and_same_day_twice_is_no_repurchase() -> None:
    hist = _ev([(f"s{n}", "tee", "purchase", d) for n in range(3) for d in (0, 8, 16)]  # 6 gaps of 8 days
               + [("s0", "tee2", "purchase", 3), ("s9", "dress", "purchase", 5), ("s9", "dress", "purchase", 5.01),
                  ("s8", "dress", "purchase", 7), ("s8", "dress", "purchase", 7.02), ("s7", "dress", "purchase", 9),
                  ("s7", "dress", "purchase", 9.03)])
    cat = pd.Series({"tee": "Tops", "tee2": "Tops", "dress": "Dress", "coat": "Coats"})
    iv = repurchase_intervals(hist, min_gaps=3, category=cat)
    # tee: its own 8 days; tee2 never re-bought: the Tops median (8); dress bought twice within a day
    # three times: no re-purchase, no interval; coat: nobody re-buys coats
    assert iv.sort_index().to_dict() == {"tee": 8.0, "tee2": 8.0}


def test_baskets_and_lift_prefer_the_partner_over_the_popular_product() -> None:
    """a's buyers take b along; p is bought by everyone, and with a three times by chance: by count p
    comes first (the baseline), by lift (count over what popularity predicts) b does; purchases
    twelve hours apart are two baskets."""
    rows = [(f"s{n}", "a", "purchase", n) for n in range(6)] + \
        [(f"s{n}", "b", "purchase", n + 0.001) for n in range(2)] + \
        [(f"s{n}", "p", "purchase", n + 0.002) for n in range(2, 5)] + \
        [(f"t{n}", "p", "purchase", n) for n in range(60)] + \
        [(f"t{n}", "q", "purchase", n + 0.5) for n in range(2)]
    ev = _ev(rows)
    sizes = baskets(ev).groupby("basket").size()
    assert sizes.max() == 2 and (sizes == 2).sum() == 5  # s0, s1: a with b; s2..s4: a with p
    pairs = co_purchases(ev).set_index(["item_id", "other"])
    assert pairs.loc[("a", "b"), "count"] == 2 and pairs.loc[("a", "p"), "count"] == 3
    assert ("p", "q") not in pairs.index
    # lift = count / (n(a) n(other) / purchases + 1), 73 purchases
    assert pairs.loc[("a", "b"), "lift"] == pytest.approx(2 / (6 * 2 / 73 + 1))
    assert pairs.loc[("a", "p"), "lift"] == pytest.approx(3 / (6 * 63 / 73 + 1))
    assert complement_pages(co_purchases(ev), [["a"]], 5, "count") == [["p", "b"]]
    assert complement_pages(co_purchases(ev), [["a"]], 5, "lift") == [["b", "p"]]
    cat = pd.Series({"a": "Trouser", "b": "Shirt", "p": "Trouser", "q": "Bag"})
    assert complement_pages(co_purchases(ev), [["a"]], 5, "lift", cat) == [["b"]]  # no second pair of trousers


def test_a_product_never_bought_with_anything_borrows_its_look_alikes_complements() -> None:
    """a2 looks like a (cosine 0.8) and a3 (0.6) and was never bought with anything: it gets b, their
    complement, at 0.1 · Σ cosine · lift; a keeps its own (a3 is orthogonal to it: lends nothing);
    nothing of a product's own category is a complement."""
    rows = [(f"s{n}", "a", "purchase", n) for n in range(3)] + \
        [(f"s{n}", "b", "purchase", n + 0.001) for n in range(3)] + [("s0", "a3", "purchase", 0.002)]
    pairs = co_purchases(_ev(rows))
    ids = np.array(["a", "a2", "a3", "b"])
    cat = np.array(["Trouser", "Trouser", "Trouser", "Shirt"])
    vec = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.0, -1.0]])
    t = complement_table(pairs, ids, cat, vec)
    got = {(r.item_id, r.other): r.score for r in t.itertuples()}
    lift = pairs.set_index(["item_id", "other"])["lift"]
    assert ("a", "a3") not in got and ("a2", "b") in got and ("a", "b") in got
    assert got[("a2", "b")] == pytest.approx(0.1 * (0.8 * lift[("a", "b")] + 0.6 * lift[("a3", "b")]), rel=1e-5)
    assert got[("a", "b")] == pytest.approx(lift[("a", "b")], rel=1e-6)
    assert complement_table(pairs, ids, cat, None).query("item_id == 'a2'").empty  # without vectors: nothing
