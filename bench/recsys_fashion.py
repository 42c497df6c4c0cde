"""Two-tower on fashion-shop: agreement with the generator's oracle, and cold-start with vs without
image embeddings. One run, all rows side by side.

    .venv/bin/python bench/recsys_fashion.py --data data/fashion-shop \
        --image-vectors runs/vision/embed/image_vectors.npy

1. Oracle recall@100: for the shoppers whose true top 100 items the generator wrote, the share of
   those items in each model's top 100 (seen items not masked, since the oracle does not mask them).
2. Test metrics (per-user temporal split, train+valid masked): two-tower vs popularity and
   popularity-per-category.
3. Cold start: 5 % of the catalog's items are removed from training entirely; at test time they are
   encoded as brand-new products (OOV id), so the item tower sees only category, price and (when
   given) the image embedding. Each test shopper with a held-out item ranks the held-out items; we
   report Recall@10/@50 with and without image embeddings, next to a category-affinity baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from recsys.baselines import BASELINES
    from recsys.config import RecTrainConfig
    from recsys.data import _eval_users, load_rec_data
    from recsys.evaluate import evaluate_ranking, item_vectors, two_tower_scores, user_vectors
    from recsys.train import load_two_tower, train_two_tower

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "fashion-shop")
    ap.add_argument("--image-vectors", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "fashion")
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    items = pd.read_parquet(a.data / "items.parquet")
    test = pd.read_parquet(a.data / "splits" / "temporal-user" / "test.parquet")
    # Hold out 5 % of the items that have test interactions, seeded.
    rng = np.random.default_rng(0)
    with_test = np.sort(test["item_id"].unique())
    cold = np.sort(rng.choice(with_test, int(0.05 * len(items)), replace=False))
    oracle = pd.read_parquet(a.data / "truth" / "top_affinities.parquet")
    train = pd.read_parquet(a.data / "splits" / "temporal-user" / "train.parquet")
    users = pd.read_parquet(a.data / "users.parquet")
    rows, timings = {}, {}
    for variant, img in (("with image", a.image_vectors), ("without image", None)):
        t0 = time.perf_counter()
        d = load_rec_data(a.data, image_vectors=img, holdout_items=cold, max_eval_users=5000)
        run = a.work / variant.replace(" ", "-")
        cfg = RecTrainConfig(data_dir=str(a.data), run_dir=str(run), epochs=a.epochs, batch_size=1024,
                             n_negatives=1024, lr=3e-3, eval_users=5000, patience=2)
        if (run / "last.pt").exists():
            import shutil

            shutil.rmtree(run)
        best = train_two_tower(cfg, data=d)
        timings[variant] = time.perf_counter() - t0
        model, _, _ = load_two_tower(best)
        cold_rows = d.spec.item_vocab.encode_rows(cold)
        # --- oracle agreement: relevant = the shopper's true top 100, nothing masked, so
        # recall@100 = |model top 100 ∩ true top 100| / 100
        ou = _eval_users(d.spec, users, train, oracle.assign(ts=pd.Timestamp(0, tz="UTC")), None, 0)
        V = item_vectors(model, d, oov_rows=cold_rows)
        U = user_vectors(model, ou)
        seen_free = replace(ou, exclude=[np.zeros(0, np.int64)] * len(ou.user_ids))
        oracle_rows = rows.setdefault("oracle", {})
        tt_fn = lambda p, U=U, V=V: U[p] @ V.T  # noqa: E731
        oracle_rows[f"two-tower ({variant})"] = evaluate_ranking(tt_fn, seen_free, d)["recall@100"]
        if variant == "with image":
            for name in ("popularity", "popularity-per-category"):
                oracle_rows[name] = evaluate_ranking(BASELINES[name](d, ou), seen_free, d)["recall@100"]
            rows["test"] = {name: evaluate_ranking(BASELINES[name](d, d.test), d.test, d)
                            for name in ("popularity", "popularity-per-category")}
        rows["test"][f"two-tower ({variant})"] = evaluate_ranking(
            two_tower_scores(model, d, d.test, oov_rows=cold_rows), d.test, d)
        # --- cold start: rank only the held-out items for shoppers who interacted with them
        cold_set = set(cold_rows.tolist())
        has = [i for i, r in enumerate(d.test.relevant) if cold_set & set(r.tolist())]
        Ut = user_vectors(model, d.test)[has]
        sc = Ut @ V[cold_rows].T  # (n, C)
        rel = [np.flatnonzero(np.isin(cold_rows, d.test.relevant[i])) for i in has]
        from recsys.metrics import ranking_metrics

        top = np.argsort(-sc, axis=1)[:, :50]
        rows.setdefault("cold", {})[f"two-tower ({variant})"] = ranking_metrics(top, rel, ks=(10, 50))
        if variant == "with image":
            cat = d.item_inputs["category"]
            cs = np.stack([np.bincount(cat[d.test.exclude[i]], minlength=cat.max() + 1)[cat[cold_rows]]
                           for i in has]).astype(float)  # share of the shopper's history in the item's category
            cs += rng.random(cs.shape) * 1e-6  # random order within a category
            rows["cold"]["category affinity"] = ranking_metrics(np.argsort(-cs, axis=1)[:, :50], rel, ks=(10, 50))
            rows["cold"]["random"] = ranking_metrics(rng.permuted(np.tile(np.arange(len(cold_rows)), (len(has), 1)),
                                                                  axis=1)[:, :50], rel, ks=(10, 50))
    import torch as _t

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {_t.__version__}, "
          f"{'GPU' if _t.cuda.is_available() else 'CPU only'}; {a.epochs} epochs max")
    print(f"fashion-shop: {len(items):,} items, {len(train):,} training events, {len(cold):,} items held out\n")
    print("Oracle recall@100 (share of the shopper's true top 100 in the model's top 100):")
    for k, v in rows["oracle"].items():
        print(f"| {k} | {v:.4f} |")
    print("\nTest split (train+valid masked):\n| model | NDCG@10 | Recall@20 | Recall@100 | coverage@10 |")
    for k, m in rows["test"].items():
        print(f"| {k} | {m['ndcg@10']:.4f} | {m['recall@20']:.4f} | {m['recall@100']:.4f} | {m['coverage']:.3f} |")
    print(f"\nCold start ({len(cold)} held-out items, shoppers who touched them):\n| model | Recall@10 | Recall@50 |")
    for k, m in rows["cold"].items():
        print(f"| {k} | {m['recall@10']:.4f} | {m['recall@50']:.4f} |")
    for k, t in timings.items():
        print(f"two-tower ({k}): data + training {t:.0f} s")


if __name__ == "__main__":
    main()
