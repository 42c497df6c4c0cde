"""Two-tower vs baselines vs RecBole peers on MovieLens-100K, one table, one run.

    .venv/bin/python bench/recsys_peers.py [--models BPR,LightGCN,ItemKNN,EASE] [--skip-recbole]

Split: Vitrine's per-user temporal 80/10/10 (each user's events by time then item id; the last 10 %
test, the 10 % before valid), all 100,000 ratings as positives, full-catalog ranking with training
items masked at validation and training + validation items masked at test. RecBole reads exactly
these three files through ``benchmark_filename`` and runs in its own venv (bench/recbole/setup.sh).
Time to quality: wall time until the two-tower's test NDCG@10 first reaches RecBole BPR's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def ensure_movielens(data: Path, cache: Path) -> None:
    if (data / "splits" / "temporal-user" / "test.parquet").is_file():
        return
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "recbole==1.2.1", "-d", str(cache)],
                       check=True)
        wheels = list(cache.glob("recbole-1.2.1-*.whl"))
    vitrine = str(Path(sys.executable).with_name("vitrine"))
    subprocess.run([vitrine, "data", "movielens", "--source", str(wheels[0]), "--out", str(data)], check=True)
    subprocess.run([vitrine, "data", "split", str(data)], check=True)


def write_recbole_files(data: Path, out: Path, name: str) -> None:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        ev = pd.read_parquet(data / "splits" / "temporal-user" / f"{part}.parquet")
        ts = ev["ts"].astype("int64") // 10**6  # back to epoch seconds
        df = pd.DataFrame({"user_id:token": ev["user_id"], "item_id:token": ev["item_id"], "timestamp:float": ts})
        df.to_csv(d / f"{name}.{part}.inter", sep="\t", index=False)


def run_recbole(models: list[str], data_path: Path, name: str) -> dict[str, dict]:
    subprocess.run(["bash", str(HERE / "recbole" / "setup.sh")], check=True)
    py = HERE / ".venv-recbole" / "bin" / "python"
    out = {}
    for m in models:
        r = subprocess.run([str(py), str(HERE / "recbole" / "run_model.py"), m, str(data_path), name],
                           capture_output=True, text=True, cwd=str(HERE))
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode != 0 or not line:
            print(f"RecBole {m} failed:\n{r.stderr[-3000:]}", file=sys.stderr)
            continue
        res = json.loads(line[0][7:])
        out[m] = {"ndcg@10": res["test"]["ndcg@10"], "recall@20": res["test"]["recall@20"],
                  "mrr@10": res["test"]["mrr@10"], "hit@10": res["test"]["hit@10"], "wall_s": res["wall_s"]}
        print(f"  RecBole {m}: NDCG@10 {out[m]['ndcg@10']:.4f} Recall@20 {out[m]['recall@20']:.4f} "
              f"({res['wall_s']:.0f} s)", flush=True)
    return out


def run_vitrine(data: Path, run: Path, cfg_overrides: dict) -> tuple[dict, list[tuple[float, float]], dict]:
    import shutil

    import torch

    from recsys.baselines import BASELINES
    from recsys.data import load_rec_data
    from recsys.evaluate import evaluate_ranking, two_tower_scores
    from recsys.train import RecTrainConfig, load_two_tower, train_two_tower

    torch.set_num_threads(os.cpu_count() or 1)
    rows = {}
    d = load_rec_data(data)
    for name, fit in BASELINES.items():
        t0 = time.perf_counter()
        m = evaluate_ranking(fit(d, d.test), d.test, d)
        rows[f"Vitrine {name}"] = m | {"wall_s": time.perf_counter() - t0}
    if run.exists():
        shutil.rmtree(run)
    cfg = RecTrainConfig(data_dir=str(data), run_dir=str(run), eval_users=None, **cfg_overrides)
    curve: list[tuple[float, float]] = []  # (training wall s, test NDCG@10) per epoch
    paused = [0.0]
    t_start = time.perf_counter()

    def on_epoch(rec: dict) -> None:
        t0 = time.perf_counter()
        model, _, _ = load_two_tower(run / "last.pt")
        m = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d, ks=(10,))
        curve.append((t0 - t_start - paused[0], m["ndcg@10"]))
        paused[0] += time.perf_counter() - t0

    best = train_two_tower(cfg, data=d, on_epoch_end=on_epoch)
    wall = time.perf_counter() - t_start - paused[0]
    model, _, _ = load_two_tower(best)
    rows["Vitrine two-tower"] = evaluate_ranking(two_tower_scores(model, d, d.test), d.test, d) | {"wall_s": wall}
    return rows, curve, cfg.__dict__


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "movielens-100k")
    ap.add_argument("--work", type=Path, default=HERE / "out")
    ap.add_argument("--models", default="BPR,LightGCN,ItemKNN,EASE")
    ap.add_argument("--skip-recbole", action="store_true")
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    ensure_movielens(a.data, a.work / "wheels")
    overrides = {"epochs": a.epochs, "batch_size": 512, "n_negatives": 512, "lr": 3e-3, "patience": 5}
    rows, curve, cfg = run_vitrine(a.data, a.work / "two-tower-ml100k", overrides)
    peers = {}
    if not a.skip_recbole:
        name = "ml-100k-vitrine"
        write_recbole_files(a.data, a.work / "recbole-data", name)
        peers = run_recbole(a.models.split(","), a.work / "recbole-data", name)
    import torch

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'GPU' if torch.cuda.is_available() else 'CPU only'}")
    print("MovieLens-100K, per-user temporal 80/10/10, full ranking, train+valid masked at test\n")
    print("| model | NDCG@10 | Recall@20 | MRR@10 | Hit@10 | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    table = {**{f"RecBole {k}": v for k, v in peers.items()}, **rows}
    for name, m in sorted(table.items(), key=lambda kv: -kv[1]["ndcg@10"]):
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@20']:.4f} | {m['mrr@10']:.4f} | {m['hit@10']:.4f} | "
              f"{m['wall_s']:.1f} |")
    tt = rows["Vitrine two-tower"]
    for peer in ("BPR", "LightGCN", "EASE"):
        if peer in peers:
            p = peers[peer]
            print(f"two-tower / RecBole {peer}: NDCG@10 x{tt['ndcg@10'] / p['ndcg@10']:.2f}, "
                  f"Recall@20 x{tt['recall@20'] / p['recall@20']:.2f}")
    if "BPR" in peers:
        bar = peers["BPR"]["ndcg@10"]
        reached = next((t for t, v in curve if v >= bar), None)
        msg = f"{reached:.1f} s" if reached is not None else "not reached"
        print(f"time to BPR's test NDCG@10 ({bar:.4f}): two-tower {msg} vs RecBole BPR training "
              f"{peers['BPR']['wall_s']:.1f} s")
    print("two-tower test NDCG@10 by epoch: " + ", ".join(f"{t:.0f}s:{v:.4f}" for t, v in curve))
    print(f"two-tower config: {json.dumps({k: cfg[k] for k in ('epochs', 'batch_size', 'n_negatives', 'lr')})}")


if __name__ == "__main__":
    main()
