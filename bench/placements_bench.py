"""The home page where shoppers come back: Recall@20 of the served page against each shopper's own
most frequent items and the popular items, combined and split into repeat (next events on items the
shopper touched before) and explore (items new to them), on the nightly gate's holdout (issue 30).

    .venv/bin/python bench/placements_bench.py --artifacts artifacts --data data/fashion-shop [--shoppers 2000]

The holdout is the demo run's split (artifacts/work/split-*): each sampled shopper's train + valid
events are their state; the distinct items of their test-period events are what they did next.
"served, seen masked" is the page the gate scores (history excluded); "home page before the
placements" is what the storefront got before the repeat-aware home (the bundle's placement models
unused: the ranked list, seen items wherever the ranker put them); "home page (repeat-aware)" is
today's (recsys/placements.py ``home_rows``); "discovery only" its switch. Each shopper's request
time is their first test event (their touches' ages), as for the models' fit.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bundle.versions import bundles_dir, current_version
from pipelines.gate import sample_holdout
from recsys.features import FeatureSpec
from recsys.placement_eval import placement_table, popular_page, top_frequency_pages
from recsys.placements import PlacementModels
from recsys.repeat_sources import first_event
from recsys.shopper_state import user_states
from serving.holdout import serve_holdout
from serving.loaded_bundle import LoadedBundle
from serving.shoppers import Shoppers


def without_placements(b: LoadedBundle) -> None:
    """The home page before the placements: the bundle's placement models unused."""
    b.placements = None


def hit_rate_times(f: float):
    """The ranker's hit rate by rank scaled by ``f``: more (f > 1) or fewer discovery slots on home."""
    def edit(b: LoadedBundle) -> None:
        b.placements.hit_rate = b.placements.hit_rate * f
    return edit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--shoppers", type=int, default=2000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--hit-rate-scale", type=float, nargs="*", default=[],
                    help="Diagnostic: the home page again with the ranker's hit rate by rank scaled (more or "
                         "fewer discovery slots), to show the merge's trade-off between repeat and explore.")
    a = ap.parse_args()
    version = current_version(a.artifacts)
    bundle = bundles_dir(a.artifacts) / version
    split = next((a.artifacts / "work").glob("split-*"))
    h = sample_holdout(a.data, split, a.shoppers, seed=0)
    before = pd.concat([pd.read_parquet(split / f"{p}.parquet", columns=["user_id", "item_id", "ts"])
                        for p in ("train", "valid")])
    pop = popular_page(before, 4 * a.k)
    users = h.users["user_id"].astype(str).tolist()
    now = first_event(pd.read_parquet(split / "test.parquet", columns=["user_id", "ts"]))
    none = [[] for _ in users]
    before_pl = serve_holdout(bundle, h.users, h.events, none, a.k, now=now, edit=without_placements)
    home = serve_holdout(bundle, h.users, h.events, none, a.k, now=now)
    discovery = serve_holdout(bundle, h.users, h.events, none, a.k, now=now, discovery_only=True)
    masked = serve_holdout(bundle, h.users, h.events, h.exclude, a.k, now=now)
    masked_before = serve_holdout(bundle, h.users, h.events, h.exclude, a.k, now=now, edit=without_placements)
    pages = {"home page before the placements": before_pl.pages, "home page (repeat-aware)": home.pages,
             "home page, discovery only": discovery.pages, "served, seen masked (the gate's page)": masked.pages,
             "served, seen masked, before the placements": masked_before.pages,
             "personal top-frequency (filled with popular)": top_frequency_pages(h.events, users, a.k, pop),
             "popular": [pop[:a.k]] * len(users)}
    for f in a.hit_rate_scale:
        pages[f"home page, discovery hit rate x{f:g}"] = serve_holdout(bundle, h.users, h.events, none, a.k, now=now,
                                                                       edit=hit_rate_times(f)).pages
    t = placement_table(pages, h.relevant, h.exclude, a.k)
    print(f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores; bundle {version}; data {a.data}; "
          f"{len(users):,} holdout shoppers (seed 0); k {a.k}")
    n = t.attrs["shoppers"]
    print(f"shoppers with next items: {n['combined']:,} ({n['repeat']:,} with a repeat, {n['explore']:,} with a new "
          f"item); repeats are {t.attrs['repeat_share']:.1%} of next items")
    print("| page | " + " | ".join(t.columns) + " |\n|---|" + "---|" * len(t.columns))
    for name, row in t.iterrows():
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    c = list(t.columns)
    home, before, top = (t.loc[n] for n in ("home page (repeat-aware)", "home page before the placements",
                                              "personal top-frequency (filled with popular)"))
    print(f"home (repeat-aware) / top-frequency, combined: {home[c[0]] / top[c[0]]:.2f}x (target >= 1.1x); explore "
          f"against the page before the placements: {home[c[2]] / before[c[2]]:.3f}x (target within 2 %); "
          f"discovery only, explore: {t.loc['home page, discovery only', c[2]] / before[c[2]]:.3f}x")
    masked_now = t.loc["served, seen masked (the gate's page)", c[2]]
    masked_then = t.loc["served, seen masked, before the placements", c[2]]
    print(f"the explore-only protocol (seen masked), now / before the placements: {masked_now / masked_then:.4f}x")
    m = PlacementModels.load(bundle / "placements.npz")
    spec = FeatureSpec.load(bundle / "features.json")
    shoppers = Shoppers(user_states(h.events, h.users, spec, now), spec)  # as serve_holdout builds them
    ids = pd.read_parquet(bundle / "items.parquet", columns=["item_id"])["item_id"].astype(str).to_numpy()
    p, y = [], []
    for u, rel in zip(users, h.relevant, strict=True):
        t = shoppers.touched(shoppers.row_of[u])
        p += m.scores("home", t).tolist()
        y += [ids[i] in set(rel) for i in t.rows.tolist()]
    print(f"home model calibration over the holdout's {len(p):,} touched items: predicted {np.mean(p):.3f}, "
          f"touched next {np.mean(y):.3f}")


if __name__ == "__main__":
    main()
