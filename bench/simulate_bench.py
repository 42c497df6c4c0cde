"""The closed loop end to end on fashion-shop with known truth (pipelines/simulate.py): the real
server on loopback, the simulated shoppers, then the online metrics the service computes from its
own logs (serving/online.py), checked against what the simulator knows.

    .venv/bin/python bench/simulate_bench.py --artifacts artifacts --data data/fashion-shop [--sessions 50000]

Prints: the position-CTR curve of the shuffled placement against the simulator's examination
probabilities (target: within 10 % relative at every position); CTR, conversion and revenue per
placement (target: the personalised home page beats the popularity list); the simulator's own
counts against the service's attributed ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from events_bench import scratch_artifacts  # noqa: E402
from serving_bench import start_server, wait_ready  # noqa: E402

from bundle.logs import log_dir  # noqa: E402
from pipelines.simulate import ARMS, SimConfig, simulate  # noqa: E402
from serving.online import online_table, position_curve  # noqa: E402

ROOT = Path(__file__).parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--sessions", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    cfg = SimConfig(sessions=a.sessions, seed=a.seed, concurrency=16, max_seconds=1800)
    host = f"http://127.0.0.1:{a.port}"
    with tempfile.TemporaryDirectory() as tmp:
        art = scratch_artifacts(a.artifacts, Path(tmp))
        server = start_server(art, a.port, a.workers, VITRINE_WARM_ANALYTICS="false")
        try:
            wait_ready(host)
            r = simulate(host, a.data, cfg)
        finally:
            server.terminate()  # the workers write what they hold and close their segments
            server.wait(60)
        root = log_dir(art)
        t = time.perf_counter()
        table = online_table(root, by=("placement",)).set_index("placement")
        curve = position_curve(root, "shuffled").set_index("position")
        secs = time.perf_counter() - t
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; uvicorn, "
          f"{a.workers} workers; bundle {(a.artifacts / 'CURRENT').read_text().strip()}; {r.sessions:,} sessions "
          f"({r.failed} failed) in {r.seconds:.0f} s, {r.events:,} events; metrics from the logs in {secs:.1f} s")
    exam = cfg.examination()
    est = (curve["ctr"] / curve["ctr"].loc[1]).to_numpy()
    rel = est / exam[: len(est)] - 1
    print("| position | examination (truth) | CTR | CTR / CTR at 1 (estimate) | relative error |")
    print("|---|---|---|---|---|")
    for k, (e, c, x, d) in enumerate(zip(exam, curve["ctr"], est, rel, strict=False), 1):
        print(f"| {k} | {e:.3f} | {c:.4f} | {x:.3f} | {d:+.1%} |")
    print(f"largest relative error {np.abs(rel).max():.1%} (target <= 10 %) over {int(curve['lists'].max()):,} "
          "shuffled lists")
    print("| placement | lists | impressions | CTR | conversion | revenue per 1,000 | simulator: clicks / purchases | "
          "service: clicks / purchases |\n|---|---|---|---|---|---|---|---|")
    for arm in [x for x in ARMS if r.lists[x]]:
        row = table.loc[arm]
        print(f"| {arm} | {r.lists[arm]:,} | {int(row.impressions):,} | {row.ctr:.4f} | {row.conversion:.4f} | "
              f"{row.rpm:,.1f} | {r.clicks[arm]:,} / {r.purchases[arm]:,} | {int(row.clicks):,} / "
              f"{int(row.purchases):,} |")
    print(f"personalised home CTR / popularity CTR = {table.loc['home'].ctr / table.loc['popular'].ctr:.2f} "
          "(target > 1)")


if __name__ == "__main__":
    main()
