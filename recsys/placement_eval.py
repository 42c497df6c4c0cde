"""Evaluation for placements where shoppers come back to what they touched: every figure split into
repeat (the next events on items the shopper touched before) and explore (on items new to them)
beside the combined one, with the two baselines such shops are measured against — each shopper's
own most frequent items (filled with popular ones) and the popular items — in the same run.

Why: "A Next Basket Recommendation Reality Check" (Li et al., 2023) shows a personal top-frequency
list beats most published models when repeats dominate, and that repeat and explore performance
must be reported apart; a discovery model's combined figure hides both. The MovieLens protocol
(explore only: seen items masked) is not this one and stays as it is (recsys/metrics.py).

Ids are strings, pages are lists of ids best first; plain functions, lists and pandas in and out.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def split_relevant(relevant: Sequence[Sequence[str]], seen: Sequence[Sequence[str]]
                   ) -> tuple[list[set[str]], list[set[str]]]:
    """Per shopper, (the next-event items they touched before, those new to them)."""
    rep, exp = [], []
    for rel, s in zip(relevant, seen, strict=True):
        s = set(s)
        rep.append({i for i in rel if i in s})
        exp.append({i for i in rel if i not in s})
    return rep, exp


def recall_at_k(pages: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean over shoppers with at least one relevant item of |top-k ∩ relevant| / min(k, |relevant|)
    (the capped form, so a shopper with more next items than k can reach 1); NaN with none."""
    scores = [len(set(p[:k]) & rel) / min(k, len(rel)) for p, rel in zip(pages, relevant, strict=True) if rel]
    return sum(scores) / len(scores) if scores else float("nan")


def popular_page(events: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` items with the most events (ties: the lower id), the same page for everyone."""
    counts = events.groupby(events["item_id"].astype(str)).size()
    return list(counts.sort_index().sort_values(ascending=False, kind="stable").index[:k])


def top_frequency_pages(events: pd.DataFrame, users: Sequence[str], k: int, fill: Sequence[str]) -> list[list[str]]:
    """Each shopper's ``k`` most frequent items (ties: the more recent first), then ``fill`` (popular
    items) for the rest of the page, without duplicates."""
    e = events.assign(user_id=events["user_id"].astype(str), item_id=events["item_id"].astype(str))
    per = (e.groupby(["user_id", "item_id"]).agg(n=("ts", "size"), last=("ts", "max")).reset_index()
           .sort_values(["user_id", "n", "last"], ascending=[True, False, False], kind="stable"))
    own = per.groupby("user_id")["item_id"].agg(list)
    pages = []
    for u in users:
        mine = own.get(u, [])[:k]
        pages.append(mine + [i for i in fill if i not in set(mine)][:k - len(mine)])
    return pages


def placement_table(pages: dict[str, Sequence[Sequence[str]]], relevant: Sequence[Sequence[str]],
                    seen: Sequence[Sequence[str]], k: int) -> pd.DataFrame:
    """Recall@k per method, combined / repeat / explore, and how many shoppers each column averages."""
    rep, exp = split_relevant(relevant, seen)
    comb = [set(r) for r in relevant]
    rows = [{"method": name, f"recall@{k}": recall_at_k(p, comb, k), f"repeat recall@{k}": recall_at_k(p, rep, k),
             f"explore recall@{k}": recall_at_k(p, exp, k)} for name, p in pages.items()]
    out = pd.DataFrame(rows).set_index("method")
    out.attrs["shoppers"] = {"combined": sum(1 for r in comb if r), "repeat": sum(1 for r in rep if r),
                             "explore": sum(1 for r in exp if r)}
    n_rel = sum(len(r) for r in comb)
    out.attrs["repeat_share"] = sum(len(r) for r in rep) / n_rel if n_rel else float("nan")
    return out
