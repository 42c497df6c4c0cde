"""Would batching concurrent recommendation requests into one ONNX/FAISS call raise throughput?

    .venv/bin/python bench/batching_bench.py --artifacts artifacts [--batch 16]

Runs the model stages of the online path (user tower -> filtered index search -> ranker over the
candidates) for B shoppers one request at a time, and as one batched call per stage, on the
bundle CURRENT names, single-threaded like a server worker. Prints the time per request of both.
(Until 2026-11-28 the ranker's features and its call were timed apart; ``LoadedBundle.rank_block``
now does both.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))
from recsys.ranking import features_block  # noqa: E402
from serving.loaded_bundle import load_current  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    b = load_current(ServingSettings(artifacts_dir=a.artifacts))
    C, B = b.settings.candidates, a.batch
    rng = np.random.default_rng(0)
    users = [u for u, i in b.shoppers.row_of.items() if len(b.shoppers.history[i])]
    allowed = b.allowed(categories=None, price_min=None, price_max=None, in_stock_only=True)

    def stages(us: list[str], clock: dict[str, float]) -> None:
        """The served code's model stages (serving/loaded_bundle.py) for these shoppers, timed one by one."""
        rows = [b.shoppers.row_of[u] for u in us]
        hist = [b.shoppers.history[r] for r in rows]
        t0 = time.perf_counter()
        uvec = b.user_vectors(us, hist, [b.shoppers.profiles[r] for r in rows])
        t1 = time.perf_counter()
        D, I = b.items_index.search(uvec, C, allowed=allowed)
        t2 = time.perf_counter()
        block = features_block(I, None, None, uvec, b.items_index.vectors, [b.shoppers.seen[r] for r in rows], hist,
                               b.catalog.stats, b.spec.category_vocab.size, D)
        b.ranker.score(block, uvec, b.catalog.codes)
        t3 = time.perf_counter()
        for k, dt in zip(("user tower", "index search", "ranker features and call"), (t1 - t0, t2 - t1, t3 - t2),
                         strict=True):
            clock[k] = clock.get(k, 0.0) + dt

    stages(users[:B], {})  # warm-up
    single: dict[str, float] = {}
    batch: dict[str, float] = {}
    for _ in range(a.rounds):
        us = [str(u) for u in rng.choice(users, B)]
        for u in us:
            stages([u], single)
        stages(us, batch)
    n = a.rounds * B
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; 1 ONNX Runtime / FAISS thread; bundle {b.version}, "
          f"{b.catalog.n_items:,} items, {C} candidates")
    print(f"| stage | ms per request, one at a time | ms per request, {B} batched | gain |\n| --- | --- | --- | --- |")
    for k in single:
        print(f"| {k} | {single[k] / n * 1e3:.3f} | {batch[k] / n * 1e3:.3f} | x{single[k] / batch[k]:.2f} |")
    ts, tb = sum(single.values()), sum(batch.values())
    print(f"| all model stages | {ts / n * 1e3:.3f} | {tb / n * 1e3:.3f} | x{ts / tb:.2f} |")


if __name__ == "__main__":
    main()
