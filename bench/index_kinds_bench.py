"""Which FAISS index for a mid-size catalog: IVF-Flat vs IVF fast-scan codes + exact re-rank, on the
served bundle's own item vectors and real shoppers' user-tower queries, as the service searches
(batches of 8, the in-stock filter, k = 103 = 100 candidates + purchase over-fetch).

    .venv/bin/python bench/index_kinds_bench.py [--artifacts artifacts]

Both kinds are tuned by ``VectorIndex.tune`` to recall@100 >= 0.95 (unfiltered, as the bundle
builder does) on 1,000 shoppers; recall is then measured with the filter on 1,000 others against
exact filtered search. Timings: best of 3 interleaved rounds, one thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))
from bundle import index as ix  # noqa: E402
from serving.loaded_bundle import load_current  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    faiss.omp_set_num_threads(1)
    b = load_current(ServingSettings(artifacts_dir=a.artifacts))
    x = b.items_index.vectors
    users = [u for u in range(len(b.shoppers.history)) if len(b.shoppers.history[u])]
    users = np.random.default_rng(0).permutation(users)[:2000]
    q = b.user_vectors([None] * len(users), [b.shoppers.history[u] for u in users],
                       [b.shoppers.profiles[u] for u in users]).astype(np.float32)
    tune_q, test_q = q[:1000], q[1000:]
    ok = b.catalog.in_stock.copy()
    ids = np.flatnonzero(ok)
    k = 103
    truth = ids[ix.exact_search(x[ids], test_q, k)[1]]
    kinds = {}
    for kind in ("ivfflat", "ivf"):
        vi = ix.VectorIndex.build(x, kind)
        vi.tune(tune_q, target_recall=0.95, k=100)
        kinds[kind] = vi
    best = {kind: np.inf for kind in kinds}
    for _ in range(3):
        for kind, vi in kinds.items():
            t = time.perf_counter()
            for i in range(0, len(test_q), a.batch):
                vi.search(test_q[i : i + a.batch], k, allowed=ok)
            best[kind] = min(best[kind], (time.perf_counter() - t) / len(test_q) * 1e6)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}, 1 thread; bundle "
          f"{b.version}: {len(x):,} items x {x.shape[1]}, {ok.mean():.0%} in stock; batches of {a.batch}")
    print("| kind | nlist | nprobe | k_factor | recall@100 unfiltered (tuning) | recall@103 in-stock | µs/query |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, vi in kinds.items():
        r = ix.recall_at_k(vi.search(test_q, k, allowed=ok)[1], truth)
        kf = vi.info.k_factor if kind == "ivf" else "-"
        print(f"| {kind} | {vi.info.nlist} | {vi.info.nprobe} | {kf} | {vi.info.recall_at_k:.3f} | {r:.3f} "
              f"| {best[kind]:.0f} |")
    print(f"ivf / ivfflat time per query: x{best['ivf'] / best['ivfflat']:.2f}")


if __name__ == "__main__":
    main()
