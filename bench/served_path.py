"""What the storefront gets: the *served* path scored on a test split, beside the offline numbers.

    .venv/bin/python bench/served_path.py --data data/movielens-100k --split random-user \
        [--tuned bench/tuned/movielens-random-user.json] [--recbole EASE,BPR]

One run: train the two-tower (the protocol's recipe from bench/recsys_peers.py, optionally with a
`vitrine recsys tune` result over it) and the ranker with its recall channels; export; build a
bundle exactly as the nightly job does (pipelines.assemble.assemble_bundle) from the dataset *as of
the end of the validation period* (train + valid events: what a nightly run before the test
period would have seen); load it with serving's ``LoadedBundle`` and ask
``serving.recommend.recommend_many`` — the function behind ``POST /v1/recommendations`` — for every
test user's top 20, in batches of 32 as the service's batcher forms them, with the user's train +
valid items in ``exclude_item_ids`` (the protocol masks them). Scored against the test items with
the same metric code as everything else. Beside it, from the same run: the two-tower alone (full
catalog), the offline ranker over the same candidates (lift.json), Vitrine's EASE and, with
``--recbole``, RecBole's models on the same files.

A catalog without photos: the bundle has no image model (the photo routes answer 409).

fashion-shop (a dataset with the generator's ``truth/``): also a bundle over *all* events — what the
nightly job would publish — asked for the default storefront page (k 10, in stock, purchases
excluded) of each of the 2,000 oracle shoppers: precision@10 against their true top 100 and the
distinct products across those pages next to the oracle's own top-10 lists.

    .venv/bin/python bench/served_path.py --data data/fashion-shop --split temporal-user \
        --image-vectors runs/vision/embed/image_vectors.npy \
        --recipe '{"epochs": 4, "batch_size": 1024, "n_negatives": 1024, "lr": 0.003, "patience": 2}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from recsys_peers import TWO_TOWER, ensure_movielens, run_recbole, write_recbole_files  # noqa: E402


def dataset_as_of_validation(data: Path, split: str, out: Path) -> Path:
    """A dataset folder with the catalog and users and only the train + valid events of ``split``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("items", "users"):
        shutil.copyfile(data / f"{name}.parquet", out / f"{name}.parquet")
    cols = pd.read_parquet(data / "events.parquet").columns
    ev = pd.concat([pd.read_parquet(data / "splits" / split / f"{p}.parquet") for p in ("train", "valid")])
    ev[[c for c in cols if c in ev.columns]].to_parquet(out / "events.parquet", index=False)
    return out


def served_topk(bundle, user_ids: np.ndarray, exclude: list[np.ndarray], k: int, candidates: int,
                batch: int = 32) -> tuple[np.ndarray, float, dict[str, float]]:
    """(U, k) catalog rows the service answers, requests per second, and the mean stage timings."""
    from serving.recommend import recommend_many
    from serving.schemas import RecommendationRequest

    ids, cap = bundle.catalog.item_ids, 1000  # the request schema's limit on exclude_item_ids
    # a shopper with more seen items than the schema takes: the rest are dropped from a longer page here
    reqs = [RecommendationRequest(user_id=str(u), k=k + max(0, len(ex) - cap), in_stock_only=False,
                                  exclude_purchased=False, exclude_item_ids=[str(ids[r]) for r in ex[:cap]])
            for u, ex in zip(user_ids, exclude, strict=True)]
    out, stages = np.full((len(reqs), k), -1, np.int64), {}
    t0 = time.perf_counter()
    for s in range(0, len(reqs), batch):
        for j, r in enumerate(recommend_many(bundle, reqs[s : s + batch], candidates)):
            if isinstance(r, Exception):
                raise r
            rows = bundle.catalog.row_of.rows([i["item_id"] for i in r["items"]])
            rows = rows[~np.isin(rows, exclude[s + j])][:k]
            out[s + j, : len(rows)] = rows
            for name, ms in r["timings"].items():
                stages[name] = stages.get(name, 0.0) + ms / len(reqs)
    return out, len(reqs) / (time.perf_counter() - t0), stages


def subset_users(eu, keep: np.ndarray):
    """The EvalUsers at positions ``keep``."""
    from dataclasses import fields, replace

    return replace(eu, **{f.name: ([getattr(eu, f.name)[i] for i in keep] if isinstance(getattr(eu, f.name), list)
                                   else getattr(eu, f.name)[keep]) for f in fields(eu)})


def oracle_pages(a: argparse.Namespace, models) -> dict[str, float | int]:
    """Precision@10 of the served page against each oracle shopper's true top 100, and how many
    distinct products the pages hold next to the oracle's own top-10 lists."""
    from pipelines.assemble import assemble_bundle
    from serving.loaded_bundle import LoadedBundle
    from serving.recommend import recommend_many
    from serving.schemas import RecommendationRequest
    from serving.settings import ServingSettings

    path = assemble_bundle(a.work / "artifacts-all", a.data, models)
    b = LoadedBundle(path, ServingSettings(artifacts_dir=a.work / "artifacts-all", candidates=a.candidates))
    truth = pd.read_parquet(a.data / "truth" / "top_affinities.parquet").astype({"user_id": str, "item_id": str})
    users = truth["user_id"].astype(str).unique()
    pages: list[list[str]] = []
    for s in range(0, len(users), 32):
        for r in recommend_many(b, [RecommendationRequest(user_id=u, k=10) for u in users[s : s + 32]], a.candidates):
            pages.append([i["item_id"] for i in r["items"]])
    top100 = truth[truth["rank"] <= 100].groupby("user_id")["item_id"].apply(set)
    prec = np.mean([len(set(p) & top100[u]) / 10 for u, p in zip(users, pages, strict=True)])
    return {"shoppers": len(users), "precision@10 vs true top 100": round(float(prec), 4),
            "distinct products in the served top-10 pages": len({i for p in pages for i in p}),
            "distinct products in the oracle's top-10 lists": int(truth[truth["rank"] <= 10]["item_id"].nunique())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "movielens-100k")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "served")
    ap.add_argument("--split", default="random-user", choices=sorted(TWO_TOWER))
    ap.add_argument("--tuned", type=Path, help="A `vitrine recsys tune` result: its parameters over the recipe.")
    ap.add_argument("--candidates", type=int, default=200, help="Tower candidates (ServingSettings.candidates).")
    ap.add_argument("--recbole", default="", help="RecBole models to run on the same files, e.g. EASE,BPR.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-vectors", type=Path, help="CNN embeddings of the catalog (`vitrine vision embed`).")
    ap.add_argument("--recipe", default="{}", help="JSON over the two-tower recipe (e.g. epochs for a large dataset).")
    ap.add_argument("--ranker", default="{}", help="JSON over RankerTrainConfig.")
    ap.add_argument("--valid-users", type=int, help="Validation users for early stopping and ranker lists.")
    a = ap.parse_args()

    import torch

    from common.onnx_runtime import make_session
    from common.recipes import from_mapping
    from pipelines.assemble import TrainedModels, assemble_bundle
    from recsys.baselines import ease
    from recsys.config import RankerTrainConfig, RecTrainConfig
    from recsys.data import load_rec_data
    from recsys.evaluate import evaluate_ranking, two_tower_scores
    from recsys.export import export_towers
    from recsys.features import PROFILE_LEN
    from recsys.metrics import ranking_metrics
    from recsys.ranker import train_evaluate_export
    from recsys.train import load_two_tower, train_two_tower
    from serving.loaded_bundle import LoadedBundle
    from serving.settings import ServingSettings

    torch.set_num_threads(os.cpu_count() or 1)
    recipe = TWO_TOWER[a.split] | (json.loads(a.tuned.read_text())["params"] if a.tuned else {}) | json.loads(a.recipe)
    if "movielens" in a.data.name or "ml100k" in a.data.name:
        ensure_movielens(a.data, HERE / "out" / "wheels", a.split)
    shutil.rmtree(a.work, ignore_errors=True)
    d = load_rec_data(a.data, split=a.split, profile_len=recipe.get("profile_len", PROFILE_LEN),
                      image_vectors=a.image_vectors)
    if a.valid_users and len(d.valid.user_ids) > a.valid_users:  # the nightly job's valid_users
        keep = np.sort(np.random.default_rng(a.seed).choice(len(d.valid.user_ids), a.valid_users, replace=False))
        d.valid = subset_users(d.valid, keep)
    rows: dict[str, dict] = {}
    t = time.perf_counter()
    rows["Vitrine EASE (full catalog)"] = evaluate_ranking(ease(d, d.test), d.test, d, ks=(10, 20))
    t_ease = time.perf_counter() - t

    t = time.perf_counter()
    cfg = RecTrainConfig(data_dir=str(a.data), run_dir=str(a.work / "two-tower"), split=a.split, eval_users=None,
                         seed=a.seed, image_vectors=str(a.image_vectors) if a.image_vectors else None, **recipe)
    model, _, _ = load_two_tower(train_two_tower(cfg, data=d))
    t_tower = time.perf_counter() - t
    rows["two-tower alone (full catalog)"] = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d,
                                                              ks=(10, 20))
    t = time.perf_counter()
    rcfg = from_mapping(RankerTrainConfig, {"candidates": a.candidates, "seed": a.seed} | json.loads(a.ranker),
                        "--ranker")
    lift = train_evaluate_export(model, d, rcfg, a.work / "ranker")
    t_ranker = time.perf_counter() - t
    for name, m in lift["channels"].items():
        rows[f"offline: {name} channel alone"] = m
    rows["offline: ranker over the channels' union"] = lift["ranker"]
    export_towers(model, d, a.work / "towers")

    t = time.perf_counter()
    view = dataset_as_of_validation(a.data, a.split, a.work / "as-of-valid")
    image_model = None
    if a.image_vectors:  # the CNN itself is not called on this path; its run's ONNX file completes the bundle
        image_model = a.image_vectors.parent.parent / "image_model.onnx"
    models = TrainedModels(a.work / "towers", a.work / "ranker" / "ranker.onnx", image_model, a.image_vectors,
                           metrics={}, configs={})
    path = assemble_bundle(a.work / "artifacts", view, models)
    t_bundle = time.perf_counter() - t
    b = LoadedBundle(path, ServingSettings(artifacts_dir=a.work / "artifacts", candidates=a.candidates))
    topk, qps, stages = served_topk(b, d.test.user_ids, d.test.exclude, 20, a.candidates)
    served_name = "served path (bundle: towers, FAISS, channels, ranker, rules)"
    rows[served_name] = ranking_metrics(topk, d.test.relevant, (10, 20))
    assert b.channels is not None and make_session(path / "ranker.onnx").get_modelmeta().custom_metadata_map["channels"]

    oracle = oracle_pages(a, models) if (a.data / "truth" / "top_affinities.parquet").is_file() else None

    peers = {}
    if a.recbole:
        name = f"ml-100k-vitrine-{a.split}"
        write_recbole_files(a.data, a.split, a.work / "recbole-data", name)
        peers = run_recbole(a.recbole.split(","), a.work / "recbole-data", name, [2020 + a.seed])
    for m, runs in peers.items():
        rows[f"RecBole {m}"] = runs[0]

    print(f"\n{date.today()}; machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'GPU' if torch.cuda.is_available() else 'CPU only'}")
    print("command: .venv/bin/python " + " ".join(sys.argv))
    print(f"{a.data.name}, {a.split} 80/10/10, {len(d.test.user_ids)} test users, train+valid masked at test; "
          f"seed {a.seed}; tower candidates {a.candidates}, union {lift['union_size']}\n")
    print("| path | NDCG@10 | Recall@20 |")
    print("| --- | --- | --- |")
    for name, m in rows.items():
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@20']:.4f} |")
    served = rows[served_name]
    offline = rows["offline: ranker over the channels' union"]
    print(f"\nserved / offline ranker: NDCG@10 x{served['ndcg@10'] / offline['ndcg@10']:.3f}, "
          f"Recall@20 x{served['recall@20'] / offline['recall@20']:.3f}")
    for ref in ("Vitrine EASE (full catalog)", *(f"RecBole {m}" for m in peers)):
        r = rows[ref]
        print(f"served / {ref}: NDCG@10 x{served['ndcg@10'] / r['ndcg@10']:.3f}, "
              f"Recall@20 x{served['recall@20'] / r['recall@20']:.3f}")
    n = lift["union_size"]
    print(f"union recall@{n} {lift[f'union_recall@{n}']:.4f} vs tower's "
          f"{a.candidates} candidates {lift[f'candidate_recall@{a.candidates}']:.4f}")
    print(f"served: {qps:.0f} requests/s in batches of 32 (one process, bench loop); mean ms per request: "
          + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"wall s: two-tower {t_tower:.0f}, ranker + channels {t_ranker:.0f}, bundle {t_bundle:.0f}, "
          f"EASE {t_ease:.0f}")
    print(f"two-tower config: {json.dumps(recipe)}")
    if oracle:
        print("\noracle shoppers, default storefront page (k 10, in stock, purchases excluded) from a bundle over "
              "all events:\n" + "\n".join(f"  {k}: {v}" for k, v in oracle.items()))


if __name__ == "__main__":
    main()
