"""The `continue` and `buy-again` lists (recsys/repeat_sources.py) against their natural baselines on a
nightly run's per-shopper temporal split (issue 30): Recall@k of what each shopper did next, among
the items the placement may show.

    .venv/bin/python bench/repeat_placements_bench.py --artifacts /tmp/art-funnels [--data /tmp/fs-funnels] [--k 10]

continue: the intent model is fitted on train -> valid (does an open item come back?), then scores
train + valid for the test period; relevant = test-period items that were open (touched, not bought
since). buy-again: intervals learned on train + valid; relevant = test-period purchases of items the
shopper had bought. Baselines: most recent first; most often bought first.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import date
from pathlib import Path

import pandas as pd

from recsys.placement_eval import recall_at_k
from recsys.repeat_sources import (
    FEATURES,
    buy_again_pages,
    continue_pages,
    fit_intent,
    most_bought_pages,
    most_recent_pages,
    open_items,
    repurchase_intervals,
    touches,
)


def first_ts(e: pd.DataFrame) -> pd.Series:
    return e.groupby(e["user_id"].astype(str))["ts"].min()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", type=Path, default=None, help="The dataset (its items.parquet): a product with too "
                    "few re-purchases of its own takes its category's interval.")
    a = ap.parse_args()
    split = next((a.artifacts / "work").glob("split-*"))
    cols = ["user_id", "item_id", "event", "ts"]
    train, valid, test = (pd.read_parquet(split / f"{p}.parquet", columns=cols) for p in ("train", "valid", "test"))
    coef = fit_intent(train, valid, first_ts(valid))
    before, now = pd.concat([train, valid]), first_ts(test)
    users = sorted(now.index)
    t = touches(before, now)
    open_now = open_items(t).groupby("user_id")["item_id"].agg(set)
    bought = t[t["buys"] > 0].groupby("user_id")["item_id"].agg(set)
    nxt = test.assign(user_id=test["user_id"].astype(str), item_id=test["item_id"].astype(str))
    touched_next = nxt.groupby("user_id")["item_id"].agg(set)
    bought_next = nxt[nxt["event"] == "purchase"].groupby("user_id")["item_id"].agg(set)
    rel_cont = [touched_next.get(u, set()) & open_now.get(u, set()) for u in users]
    rel_buy = [bought_next.get(u, set()) & bought.get(u, set()) for u in users]
    items = pd.read_parquet(a.data / "items.parquet", columns=["item_id", "category"]) if a.data else None
    iv = repurchase_intervals(before, category=None if items is None else
                              items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"])
    rows = {
        "continue: intent model": recall_at_k(continue_pages(t, users, a.k, coef), rel_cont, a.k),
        "continue baseline: most recent first": recall_at_k(most_recent_pages(t, users, a.k), rel_cont, a.k),
        "buy-again: learned intervals": recall_at_k(buy_again_pages(t, users, a.k, iv), rel_buy, a.k),
        "buy-again baseline: most often bought first": recall_at_k(most_bought_pages(t, users, a.k),
                                                                   rel_buy, a.k),
    }
    print(f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores; split {split.name}; {len(users):,} test "
          f"shoppers; k {a.k}")
    print(f"intent model (intercept, {', '.join(FEATURES)}): {', '.join(f'{c:+.3f}' for c in coef)}")
    print(f"shoppers with a next touch of an open item: {sum(1 for r in rel_cont if r):,}; with a re-purchase: "
          f"{sum(1 for r in rel_buy if r):,}; products with a learned interval: {len(iv):,} "
          f"(median {iv.median():.1f} days)")
    print(f"| list | recall@{a.k} |\n|---|---|")
    for name, v in rows.items():
        print(f"| {name} | {v:.4f} |")
    cont = rows["continue: intent model"] / rows["continue baseline: most recent first"]
    again = rows["buy-again: learned intervals"] / rows["buy-again baseline: most often bought first"]
    print(f"continue / most recent: {cont:.2f}x; buy-again / most often bought: {again:.2f}x (targets >= 1.2x)")

if __name__ == "__main__":
    main()
