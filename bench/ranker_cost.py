"""What the ranker stage costs per request as the candidate union grows, in-process (no HTTP).

    .venv/bin/python bench/ranker_cost.py --artifacts bench/out/served-fashion/artifacts-all

Loads the bundle CURRENT names and times, for a batch of 12 known shoppers (the service's batch
under load) and union sizes C: the ranker features (``recsys.rank_features``, the compiled pass)
and the ranker's ONNX Runtime call with its inputs (``LoadedBundle.rank_block`` less the
features), median of 5 rounds of 100 batches. The candidates are random catalog rows: every
feature of a row depends only on its own position, so their values change nothing the clock sees.
Both stages grow linearly in C; the rest of the request path (FAISS, the union, the user tower,
HTTP) does not depend on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from recsys.channels import FIELDS
    from recsys.rank_features import rank_features
    from recsys.ranking import features_block
    from serving.loaded_bundle import LoadedBundle
    from serving.settings import ServingSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    ap.add_argument("--sizes", default="50,100,125,250,350")
    ap.add_argument("--batch", type=int, default=12)
    a = ap.parse_args()
    s = ServingSettings(artifacts_dir=a.artifacts)
    b = LoadedBundle(a.artifacts / "bundles" / (a.artifacts / "CURRENT").read_text().strip(), s)
    rng = np.random.default_rng(0)
    users = rng.choice([r for r in b.shoppers.row_of.values() if len(b.shoppers.history[r])], a.batch)
    seen, recent = [b.shoppers.seen[u] for u in users], [b.shoppers.history[u] for u in users]
    U = rng.standard_normal((a.batch, b.items_index.vectors.shape[1])).astype(np.float32)
    print(f"{date.today()}; machine: {platform.machine()}, {os.cpu_count()} cores; bundle {b.version} "
          f"({b.catalog.n_items:,} items); batches of {a.batch} shoppers; ONNX Runtime threads {s.ort_threads}")
    print("command: .venv/bin/python " + " ".join(sys.argv))
    ncat = b.spec.category_vocab.size
    print("| union size C | features ms/request | ranker call ms/request | both | per candidate µs |")
    print("| --- | --- | --- | --- | --- |")
    for C in map(int, a.sizes.split(",")):
        cand = rng.integers(0, b.catalog.n_items, (a.batch, C))
        ch = rng.random((a.batch, C, len(FIELDS))).astype(np.float32)
        score = rng.random((a.batch, C)).astype(np.float32)

        def timed(fn) -> float:
            fn()
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(100):
                    fn()
                runs.append((time.perf_counter() - t) / 100 / a.batch * 1e3)
            return float(np.median(runs))

        feats = timed(lambda: rank_features(b.catalog.stats, seen, recent, cand, score, ncat, ch))  # noqa: B023
        def rank_stage(cand=cand, ch=ch, score=score) -> None:  # the ranking stage serving runs (recsys/ranking.py)
            block = features_block(cand, ch, None, U, b.items_index.vectors, seen, recent, b.catalog.stats, ncat, score)
            b.ranker.score(block, U, b.catalog.codes)

        both = timed(rank_stage)
        print(f"| {C} | {feats:.3f} | {both - feats:.3f} | {both:.3f} | {both / C * 1e3:.2f} |")


if __name__ == "__main__":
    main()
