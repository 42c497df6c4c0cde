"""Second-stage ranker vs the two-tower's own order of the same candidates, on held-out data.

    .venv/bin/python bench/ranker_bench.py --data data/movielens-100k --two-tower bench/out/two-tower-ml100k/best.pt
    .venv/bin/python bench/ranker_bench.py --data data/fashion-shop \
        --two-tower bench/out/fashion/with-image/best.pt --image-vectors runs/bench-vision-cpu/embed/image_vectors.npy

Without --two-tower a two-tower is trained first (same recipe as the recsys benchmarks). The
ranker trains on the validation period (lists of 200 tower candidates per user, labels = what the
user did in validation) and is scored on the test period: NDCG@10 / Recall@10 of the tower's order
vs the ranker's order of the same 200 candidates per test user. Exports ranker.onnx and checks
parity. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from common.recipes import from_mapping  # noqa: E402
from recsys.config import RankerTrainConfig, RecTrainConfig  # noqa: E402
from recsys.data import load_rec_data  # noqa: E402
from recsys.ranker import (  # noqa: E402
    evaluate_lift,
    load_ranker,
    period_stats,
    train_evaluate_export,
)
from recsys.train import load_two_tower, train_two_tower  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="temporal-user")
    ap.add_argument("--two-tower", type=Path, help="best.pt of a trained two-tower (else one is trained)")
    ap.add_argument("--image-vectors", type=Path)
    ap.add_argument("--valid-users", type=int, default=20_000, help="validation-period users to learn from")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("bench/out/ranker"))
    ap.add_argument("--model", type=json.loads, default={},
                    help='RankerConfig overrides as JSON, e.g. \'{"raw_vectors": true, "hidden": [128, 64]}\'')
    ap.add_argument("--eval-at", type=int, nargs="*", default=[100],
                    help="also score the trained ranker on lists of these lengths (the service uses 100)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = a.out / a.data.name
    t0 = time.perf_counter()
    data = load_rec_data(a.data, split=a.split, image_vectors=a.image_vectors, max_eval_users=a.valid_users)
    if a.two_tower is None:
        cfg = RecTrainConfig(data_dir=str(a.data), run_dir=str(out / "two-tower"), eval_users=5000, patience=2)
        a.two_tower = train_two_tower(cfg, data)
    tt, _, _ = load_two_tower(a.two_tower)
    tt.eval()
    cfg = from_mapping(RankerTrainConfig, {"candidates": a.candidates, "model": a.model}, "--model")
    lift = train_evaluate_export(tt, data, cfg, out)
    info, diff = lift["train"], lift["onnx_parity"]
    tw, rk = lift["tower"], lift["ranker"]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"total {time.perf_counter() - t0:.0f} s (ranker training {info['train_s']:.0f} s)")
    print(f"### {a.data.name}: {lift['users']:,} test users, {a.candidates} tower candidates each "
          f"(candidate recall@{a.candidates} {lift[f'candidate_recall@{a.candidates}']:.3f}); ranker trained on "
          f"{info['train_lists']:,} validation-period lists")
    print("| order of the same candidates | NDCG@10 | Recall@10 | NDCG@20 | Recall@20 |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in (("two-tower score", tw), ("DCN-v2 ranker", rk)):
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['ndcg@20']:.4f} | {m['recall@20']:.4f} |")
    print(f"NDCG@10 lift: x{lift['ndcg@10_lift']:.3f}; ranker.onnx parity {diff:.1e}; model {a.model or 'defaults'}")
    ranker, stats = load_ranker(out / "ranker.pt"), period_stats(data, ("train", "valid"))
    for C in a.eval_at:
        m = evaluate_lift(ranker, tt, data, stats, C)
        print(f"same ranker on {C} candidates: NDCG@10 tower {m['tower']['ndcg@10']:.4f} -> ranker "
              f"{m['ranker']['ndcg@10']:.4f} (x{m['ndcg@10_lift']:.3f})")


if __name__ == "__main__":
    main()
