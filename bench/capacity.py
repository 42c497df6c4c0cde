"""The capacity table of docs/scaling.md: per-item memory and per-query cost, measured, then carried
to catalogs of 100k, 1M, 10M and 100M items.

    .venv/bin/python bench/capacity.py --bundle bench/out/served-fashion/artifacts-all/bundles/20261127T203705Z

Measured here: (1) the service's resident memory per catalog item, loading a real bundle
(``LoadedBundle``: item arrays, vectors, index, channel neighbour lists, ONNX sessions; the fixed
part is what a bundle's models weigh); (2) the index's bytes per item and single-query latency at
recall@100 ≥ 0.95 for the kind ``choose_kind`` picks past 250k items (IVF fast-scan + re-rank), on
a 2,000-cluster Gaussian mixture of 64-d vectors at two sizes (200k and 800k). Carried over, not
measured: memory linearly; the IVF query cost
as a·n^b fitted through the two sizes (IVF with 4·√n lists scans ~√n vectors per query at a fixed
recall, so b ≈ 0.5 is expected and printed).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import index_bench  # noqa: E402
from bundle.index import IVFFLAT_MAX, VectorIndex, choose_kind  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bundle_memory(bundle: Path) -> tuple[float, float, int, int]:
    """(MB of models, bytes per item, items, shoppers): RSS of loading a bundle, less its models' file
    sizes, per item (its shoppers' histories included, at this catalog's ratio of shoppers to items)."""
    from serving.loaded_bundle import LoadedBundle
    from serving.settings import ServingSettings

    gc.collect()
    before = rss_mb()
    b = LoadedBundle(bundle, ServingSettings(artifacts_dir=bundle.parent.parent))
    total = rss_mb() - before
    models = sum(p.stat().st_size for p in bundle.glob("*.onnx")) / 2**20
    n, users = len(b.catalog.item_ids), len(b.shoppers.row_of)
    del b
    return models, (total - models) * 2**20 / n, n, users


def mixture(n: int, rng: np.random.Generator, d: int = 64) -> np.ndarray:
    """64-d unit vectors, 2,000 clusters, noise 1.2x their spread (bench/index_bench.py's generator)."""
    return index_bench.mixture(n, d, 2000, 1.2, rng)


def index_cost(n: int, seed: int = 0) -> dict:
    """The kind every catalog past IVFFLAT_MAX gets (IVF fast-scan codes + exact re-rank), at size n."""
    rng = np.random.default_rng(seed)
    x = mixture(n + 700, rng)
    base, tune_q, test_q = x[:n], x[n:n + 500], x[n + 500:]
    kind = choose_kind(10 * IVFFLAT_MAX, 64)
    index = VectorIndex.build(base, kind)
    index.tune(tune_q, target_recall=0.95, k=100)
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "i.faiss")
        size = (Path(tmp) / "i.faiss").stat().st_size
    t = time.perf_counter()
    for q in test_q:
        index.search(q[None], 100)
    ms = (time.perf_counter() - t) / len(test_q) * 1e3
    return {"n": n, "kind": kind, "bytes_per_item": (size + base.nbytes) / n, "ms": ms,
            "nprobe": index.info.nprobe, "recall": index.info.recall_at_k}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--sizes", type=int, nargs=2, default=[200_000, 800_000])
    a = ap.parse_args()
    fixed_mb, per_item, n_items, n_users = bundle_memory(a.bundle)
    small, large = (index_cost(n) for n in a.sizes)
    b = np.log(large["ms"] / small["ms"]) / np.log(large["n"] / small["n"])
    print(f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, CPU only; "
          f"`{' '.join(sys.argv)}`")
    print(f"service memory: {fixed_mb:.0f} MB of models + {per_item:,.0f} bytes per item (RSS of loading "
          f"{a.bundle.name}, {n_items:,} items and {n_users:,} shoppers, whose histories are counted per item)")
    for c in (small, large):
        print(f"index at {c['n']:,}: {c['kind']}, {c['bytes_per_item']:.0f} bytes/item (codes + raw vectors), "
              f"nprobe {c['nprobe']}, recall@100 {c['recall']:.3f}, {c['ms']:.3f} ms per single query")
    print(f"query cost fit: ms = a * n^{b:.2f} (through the two sizes)")
    print("\n| catalog | service memory per replica | single-query index cost (1 core) | index queries/s per core "
          "|\n| --- | --- | --- | --- |")
    for n in (100_000, 1_000_000, 10_000_000, 100_000_000):
        ms = large["ms"] * (n / large["n"]) ** b
        mem = fixed_mb / 1024 + n * per_item / 2**30
        tag = "measured" if n in (small["n"], large["n"]) else "carried over"
        print(f"| {n:,} | {mem:,.1f} GB | {ms:.2f} ms ({tag}) | {1e3 / ms:,.0f} |")


if __name__ == "__main__":
    main()
