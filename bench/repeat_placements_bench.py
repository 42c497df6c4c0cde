"""The `continue`, `buy-again` and `cart` lists (recsys/placements.py, fitted by
recsys/repeat_sources.py) against their natural baselines on a nightly run's per-shopper temporal split
(issue 30): Recall@k of what each shopper did next, among the items the placement may show.

    .venv/bin/python bench/repeat_placements_bench.py --artifacts /tmp/art-f2 --data /tmp/fs-f2 [--k 1 3 10]

The models are fitted on train -> valid (as the nightly job fits them: recsys/placement_fit.py), then
score train + valid for the test period. continue: relevant = test-period purchases of items that
were open (touched, not bought since); a second row counts any touch. buy-again: test-period
purchases of items the shopper had bought. cart: every test-period basket of two products or more,
its first product as the cart, the others as relevant; pairs from train + valid; the look-alikes by
the nightly's photo embeddings (dataset item order, as the bundle's).
Baselines: most recent first; most often bought first; co-purchase counts with the cart's product, and
the products most often in a basket of two or more overall.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.complements import baskets, co_purchases, complement_pages, complement_table
from recsys.placement_eval import recall_at_k
from recsys.placements import FEATURES
from recsys.repeat_sources import (
    first_event,
    fit_models,
    model_pages,
    most_bought_pages,
    most_recent_pages,
    open_items,
    repurchase_intervals,
    touches,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="The dataset (its items.parquet: categories)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 3, 10])
    a = ap.parse_args()
    split = next((a.artifacts / "work").glob("split-*"))
    cols = ["user_id", "item_id", "event", "ts"]
    train, valid, test = (pd.read_parquet(split / f"{p}.parquet", columns=cols) for p in ("train", "valid", "test"))
    items = pd.read_parquet(a.data / "items.parquet", columns=["item_id", "category"])
    category = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"]
    coef = fit_models(train, valid, first_event(valid), repurchase_intervals(train, category=category))
    before, now = pd.concat([train, valid]), first_event(test)
    iv = repurchase_intervals(before, category=category)
    users = sorted(now.index)
    t = touches(before, now)
    open_now = open_items(t).groupby("user_id")["item_id"].agg(set)
    bought = t[t["buys"] > 0].groupby("user_id")["item_id"].agg(set)
    nxt = test.assign(user_id=test["user_id"].astype(str), item_id=test["item_id"].astype(str))
    touched_next = nxt.groupby("user_id")["item_id"].agg(set)
    bought_next = nxt[nxt["event"] == "purchase"].groupby("user_id")["item_id"].agg(set)
    rel_cont = [bought_next.get(u, set()) & open_now.get(u, set()) for u in users]
    rel_touch = [touched_next.get(u, set()) & open_now.get(u, set()) for u in users]
    rel_buy = [bought_next.get(u, set()) & bought.get(u, set()) for u in users]
    K = max(a.k)
    cont = model_pages(t, "continue", users, K, coef["continue"], iv)
    recent = most_recent_pages(t, users, K)
    again = model_pages(t, "buy_again", users, K, coef["buy_again"], iv)
    often = most_bought_pages(t, users, K)
    pairs = co_purchases(before)
    bk = baskets(test).groupby("basket")["item_id"].agg(lambda s: list(dict.fromkeys(s)))
    bk = bk[bk.map(len) >= 2]
    carts, rel_cart = [[b[0]] for b in bk], [set(b[1:]) for b in bk]
    vision = next((a.artifacts / "work").glob("vision-*"), None)
    looks = np.load(vision / "embed" / "image_vectors.npy") if vision is not None else None  # dataset's item order
    table = complement_table(pairs, items["item_id"].astype(str).to_numpy(), items["category"].to_numpy(), looks)
    own = complement_table(pairs, items["item_id"].astype(str).to_numpy(), items["category"].to_numpy(), None)
    lifted, counted = complement_pages(table, carts, K, "score", category), complement_pages(pairs, carts, K, "count")
    own_only = complement_pages(own, carts, K, "score", category)
    multi = baskets(before).drop_duplicates(["basket", "item_id"])
    multi = multi[multi.groupby("basket")["item_id"].transform("size") >= 2]
    together = list(multi["item_id"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index)
    overall = [[i for i in together[: K + 1] if i not in c][:K] for c in carts]
    lists = {
        "continue: intent model (bought next)": (cont, rel_cont),
        "continue baseline: most recent first (bought next)": (recent, rel_cont),
        "continue: intent model (touched next)": (cont, rel_touch),
        "continue baseline: most recent first (touched next)": (recent, rel_touch),
        "buy-again: re-purchase model": (again, rel_buy),
        "buy-again baseline: most often bought first": (often, rel_buy),
        "cart: complements (lift + look-alikes' complements, other categories)": (lifted, rel_cart),
        "cart: complements, own lift only": (own_only, rel_cart),
        "cart baseline: co-purchase counts": (counted, rel_cart),
        "cart baseline: most often bought together overall": (overall, rel_cart),
    }
    rows = {name: [recall_at_k(pg, rel, k) for k in a.k] for name, (pg, rel) in lists.items()}
    print(f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores; split {split.name}; {len(users):,} test "
          f"shoppers")
    for m, c in coef.items():
        print(f"model {m} (intercept, {', '.join(FEATURES)}): {', '.join(f'{x:+.2f}' for x in c)}")
    print(f"shoppers buying an open item next: {sum(1 for r in rel_cont if r):,}; touching one: "
          f"{sum(1 for r in rel_touch if r):,}; re-buying: {sum(1 for r in rel_buy if r):,}; test baskets of 2+: "
          f"{len(carts):,}; products with an interval: {len(iv):,} (median {iv.median():.1f} days); "
          f"co-purchase pairs: {len(pairs):,}")
    print("| list | " + " | ".join(f"recall@{k}" for k in a.k) + " |\n|---|" + "---|" * len(a.k))
    for name, v in rows.items():
        print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in v) + " |")
    r = [v for name, v in rows.items() if name != "cart: complements, own lift only"]
    for j, k in enumerate(a.k):
        print(f"k {k}: continue / most recent {r[0][j] / r[1][j]:.2f}x (touched next {r[2][j] / r[3][j]:.2f}x); "
              f"buy-again / most often bought {r[4][j] / r[5][j]:.2f}x; cart / co-purchase counts "
              f"{r[6][j] / max(r[7][j], 1e-12):.2f}x, / most bought together overall "
              + (f"{r[6][j] / r[8][j]:.2f}x" if r[8][j] else "(finds none)"))


if __name__ == "__main__":
    main()
