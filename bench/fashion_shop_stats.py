"""Build fashion-shop at a given size, time it, and print the statistics quoted in docs/data.md.

    .venv/bin/python bench/fashion_shop_stats.py [--out /tmp/fashion-shop] [--users 30000 --items 70000]

Compares, in one run, on the per-user temporal split: plain popularity, popularity within the
shopper's favourite training category, and the generator's oracle (true top items).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def recall(recs: dict, truth: pd.Series, k: int) -> float:
    return float(np.mean([len(set(recs[u][:k]) & s) / min(len(s), k) for u, s in truth.items() if u in recs]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/fashion-shop-bench"))
    ap.add_argument("--users", type=int, default=30_000)
    ap.add_argument("--items", type=int, default=70_000)
    a = ap.parse_args()
    vitrine = str(Path(sys.executable).with_name("vitrine"))
    subprocess.run(["rm", "-rf", str(a.out)], check=True)
    t0 = time.perf_counter()
    subprocess.run([vitrine, "data", "fashion-shop", "--out", str(a.out), "--users", str(a.users),
                    "--items", str(a.items)], check=True, capture_output=True)
    build_s = time.perf_counter() - t0
    subprocess.run([vitrine, "data", "split", str(a.out)], check=True, capture_output=True)

    ev = pd.read_parquet(a.out / "events.parquet")
    items = pd.read_parquet(a.out / "items.parquet")
    sp = a.out / "splits" / "temporal-user"
    train, test = pd.read_parquet(sp / "train.parquet"), pd.read_parquet(sp / "test.parquet")
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}")
    print(f"build: {a.users:,} shoppers, {a.items:,} items -> {len(ev):,} events in {build_s:.1f} s")
    share = ev["event"].value_counts(normalize=True)
    print("funnel: " + ", ".join(f"{k} {share[k]:.1%}" for k in ("view", "cart", "purchase")))
    views = ev.loc[ev.event == "view", "item_id"].value_counts()
    print(f"popularity: top 1% of items take {views.iloc[: len(items) // 100].sum() / views.sum():.1%} of views")

    truth = test.groupby("user_id")["item_id"].apply(set)
    cat = items.set_index("item_id")["category"]
    train = train.assign(category=train["item_id"].map(cat))
    for k in (20, 100):
        pop = train["item_id"].value_counts().index[:k].tolist()
        per_cat = {c: g.value_counts().index[:k].tolist() for c, g in train.groupby("category")["item_id"]}
        fav = train.groupby("user_id")["category"].agg(lambda s: s.value_counts().index[0])
        r_pop = recall(dict.fromkeys(truth.index, pop), truth, k)
        r_cat = recall({u: per_cat[fav[u]] for u in fav.index}, truth, k)
        print(f"Recall@{k} on test (all users): popularity {r_pop:.3f}, popularity-per-favourite-category "
              f"{r_cat:.3f} ({r_cat / r_pop:.2f}x)")
    oracle = pd.read_parquet(a.out / "truth" / "top_affinities.parquet")
    orc = oracle.groupby("user_id")["item_id"].apply(list).to_dict()
    sampled = truth[truth.index.isin(orc.keys())]
    pop100 = train["item_id"].value_counts().index[:100].tolist()
    r_o = recall(orc, sampled, 100)
    r_p = recall(dict.fromkeys(sampled.index, pop100), sampled, 100)
    print(f"Recall@100 on test ({len(sampled)} oracle users): oracle {r_o:.3f}, popularity {r_p:.3f} "
          f"({r_o / r_p:.2f}x)")


if __name__ == "__main__":
    main()
