"""Repeat / explore evaluation (recsys/placement_eval.py) against hand-computed examples."""

from __future__ import annotations

import math

import pandas as pd

from recsys.placement_eval import placement_table, popular_page, recall_at_k, split_relevant, top_frequency_pages


def _events(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])


def test_next_items_split_into_repeat_and_explore() -> None:
    rep, exp = split_relevant([["a", "b", "c"], ["x"]], [["b", "z"], []])
    assert rep == [{"b"}, set()] and exp == [{"a", "c"}, {"x"}]


def test_recall_is_capped_at_k_and_skips_shoppers_with_nothing_relevant() -> None:
    pages = [["a", "b"], ["c", "d"], ["e", "f"]]
    # shopper 1: 1 of 2 relevant found -> 0.5; shopper 2: 3 relevant, k 2, both found -> 2/min(2,3) = 1.0
    # shopper 3: nothing relevant: not counted
    assert recall_at_k(pages, [{"a", "q"}, {"c", "d", "r"}, set()], 2) == 0.75
    assert math.isnan(recall_at_k(pages, [set(), set(), set()], 2))


def test_top_frequency_orders_by_count_then_recency_and_fills_with_popular() -> None:
    ev = _events([("u", "a", 1), ("u", "b", 2), ("u", "b", 3), ("u", "c", 9), ("v", "a", 1), ("v", "a", 2),
                  ("w", "d", 1)])
    assert popular_page(ev, 3) == ["a", "b", "c"]  # a 3 events, b 2; c and d 1 each: the lower id first
    pages = top_frequency_pages(ev, ["u", "v", "nobody"], 3, popular_page(ev, 4))
    # u: b twice, then c (ts 9) before a (ts 1) at one each; v: a, then popular b, c; nobody: popular only
    assert pages == [["b", "c", "a"], ["a", "b", "c"], ["a", "b", "c"]]


def test_the_table_reports_combined_repeat_and_explore_side_by_side() -> None:
    pages = {"mine": [["a", "x"], ["b", "y"]], "pop": [["x", "y"], ["x", "y"]]}
    relevant, seen = [["a", "x"], ["b", "z"]], [["a"], ["q"]]
    t = placement_table(pages, relevant, seen, k=2)
    # combined: shopper 1 finds a, x (1.0); shopper 2 finds b of b, z (0.5) -> 0.75 for "mine"
    assert t.loc["mine", "recall@2"] == 0.75 and t.loc["pop", "recall@2"] == 0.25
    # repeat: only shopper 1 has one (a): mine finds it, pop does not
    assert t.loc["mine", "repeat recall@2"] == 1.0 and t.loc["pop", "repeat recall@2"] == 0.0
    # explore: shopper 1 {x}, shopper 2 {b, z}: mine 1.0 and 0.5; pop 1.0 and 0.0
    assert t.loc["mine", "explore recall@2"] == 0.75 and t.loc["pop", "explore recall@2"] == 0.5
    assert t.attrs["shoppers"] == {"combined": 2, "repeat": 1, "explore": 2} and t.attrs["repeat_share"] == 0.25
