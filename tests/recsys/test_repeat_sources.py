"""The `continue` and `buy-again` lists (recsys/repeat_sources.py) on hand-made shoppers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.repeat_sources import (
    buy_again_pages,
    continue_pages,
    fit_intent,
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
    coef = np.array([0.0, 0.0, 0.0, 5.0, 0.0])  # a model that only values an open cart
    assert continue_pages(touches(ev, NOW), ["u"], 5, coef) == [["a", "b"]]


def test_the_intent_model_learns_that_open_carts_come_back() -> None:
    rng = np.random.default_rng(0)
    rows, nxt = [], []
    for n in range(400):
        u = f"u{n}"
        for j in range(4):
            rows.append((u, f"{u}-{j}", "view", float(rng.uniform(0, 29))))
        rows.append((u, f"{u}-0", "cart", 29.5))
        nxt.append((u, f"{u}-0", "view", 31.0))  # the carted one comes back
        if rng.random() < 0.2:
            nxt.append((u, f"{u}-{rng.integers(1, 4)}", "view", 31.0))
    now = pd.Series({f"u{n}": T0 + pd.Timedelta(days=30) for n in range(400)})
    coef = fit_intent(_ev(rows), _ev(nxt), now)
    assert coef[3] > 1.0  # open_cart


def test_buy_again_needs_a_learned_interval_and_puts_the_most_due_first() -> None:
    hist = _ev([(f"s{n}", "tee", "purchase", d) for n in range(3) for d in (0, 10, 20)]
               + [("s0", "coat", "purchase", 1), ("s1", "coat", "purchase", 2)])
    iv = repurchase_intervals(hist, min_gaps=3)
    assert iv.to_dict() == {"tee": 10.0}  # 6 gaps of 10 days; coat never bought twice by one shopper
    ev = _ev([("u", "tee", "purchase", 20), ("u", "coat", "purchase", 1), ("u", "sock", "purchase", 28),
              ("u", "sock", "purchase", 29)])
    iv = pd.Series({"tee": 10.0, "sock": 30.0})
    # tee bought 10 days ago at a 10-day interval: due; sock 1 day ago at 30: not yet; coat: no interval
    assert buy_again_pages(touches(ev, NOW), ["u"], 5, iv) == [["tee", "sock"]]
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
