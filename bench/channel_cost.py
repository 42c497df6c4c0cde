"""CPU per recommendation request with and without the recall channels, in-process (no HTTP).

    .venv/bin/python bench/channel_cost.py --artifacts bench/out/served-fashion/artifacts-all

Loads the bundle CURRENT names, asks ``recommend_many`` for 2,000 default storefront pages of known
shoppers in batches of 13 (the service's average batch under load), alternating the bundle's
channels on and off twice; prints the milliseconds per request of each pass, then where a
channels-on pass spends them (one more pass under cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


STAGES = (("user tower", "loaded_bundle.py", "user_vectors"), ("FAISS", "index.py", "search"),
          ("union kernel", "union_kernel.py", "union_batch"), ("ranker features", "rank_features.py", "rank_features"),
          ("ranker call and its inputs", "ranking.py", "score"), ("rules and records", "recommend.py", "page"))


def main() -> None:
    from serving.loaded_bundle import LoadedBundle
    from serving.recommend import recommend_many
    from serving.schemas import RecommendationRequest
    from serving.settings import ServingSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=13)
    a = ap.parse_args()
    s = ServingSettings(artifacts_dir=a.artifacts)
    import faiss

    faiss.omp_set_num_threads(s.faiss_threads)  # as the service runs its batches
    b = LoadedBundle(a.artifacts / "bundles" / (a.artifacts / "CURRENT").read_text().strip(), s)
    users = [u for u, r in b.shoppers.row_of.items() if len(b.shoppers.history[r])]
    rng = np.random.default_rng(0)
    reqs = [RecommendationRequest(user_id=users[i], k=10) for i in rng.integers(0, len(users), a.requests)]
    channels = b.channels

    def run(ch) -> float:
        b.channels = ch
        t = time.perf_counter()
        for i in range(0, len(reqs), a.batch):
            recommend_many(b, reqs[i : i + a.batch], s.candidates)
        return (time.perf_counter() - t) / len(reqs) * 1e3

    run(channels)  # warm-up
    rows = [(name, run(ch)) for _ in range(2) for name, ch in (("channels on", channels), ("tower only", None))]
    b.channels = channels
    print(f"{date.today()}; machine: {platform.machine()}, {os.cpu_count()} cores; bundle {b.version} "
          f"({b.catalog.n_items:,} items); {a.requests} requests in batches of {a.batch}, "
          f"{s.candidates} tower candidates")
    print("command: .venv/bin/python " + " ".join(sys.argv))
    for name, ms in rows:
        print(f"  {name}: {ms:.3f} ms per request")
    # where the channels-on path spends it: one more pass under cProfile (which adds its own overhead)
    prof = cProfile.Profile()
    prof.runcall(run, channels)
    cum = {}
    for (path, _, fn), (_, _, _, ct, _) in pstats.Stats(prof).stats.items():
        cum[(Path(path).name, fn)] = cum.get((Path(path).name, fn), 0.0) + ct
    total = cum[("channel_cost.py", "run")]
    per = {name: cum.get((path, fn), 0.0) for name, path, fn in STAGES}
    per["the rest (request set-up, Python between the calls)"] = total - sum(per.values())
    print(f"  channels on under cProfile (which adds its own overhead): {total / len(reqs) * 1e3:.3f} ms per request")
    for name, t in per.items():
        print(f"    {name}: {t / len(reqs) * 1e3:.3f} ms per request, {t / total:.0%}")


if __name__ == "__main__":
    main()
