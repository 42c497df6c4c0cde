"""Off-policy estimates against what the same orderings measure online, on the simulator
(docs/experiments.md): the real server with exploration on the home page (its top positions
shuffled on a share of pages, propensities logged), simulated shoppers on three placements —
``home`` (explored), ``reversed`` and ``shuffled`` (the service's page shown upside down / in random
order: the candidates, served for real) — then IPS and SNIPS of the reversed and random orderings
from the home page's log alone, against the CTR those placements measured.

    .venv/bin/python bench/off_policy_bench.py --artifacts artifacts --data data/fashion-shop \
        [--sessions 20000 --rate 0.5]
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

sys.path.insert(0, str(Path(__file__).parent))
from events_bench import scratch_artifacts  # noqa: E402
from serving_bench import start_server, wait_ready  # noqa: E402

from bundle.logs import log_dir  # noqa: E402
from pipelines.simulate import SimConfig, simulate  # noqa: E402
from serving.off_policy import estimate, logged_lists  # noqa: E402

ROOT = Path(__file__).parents[1]
MEASURED = {"reversed": "reversed", "random": "shuffled"}  # candidate -> the placement that served it


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--data", type=Path, default=Path("data/fashion-shop"))
    ap.add_argument("--sessions", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=0.5, help="share of home pages explored")
    ap.add_argument("--port", type=int, default=8769)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    k = 10
    host = f"http://127.0.0.1:{a.port}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        art = scratch_artifacts(a.artifacts, Path(tmp))
        server = start_server(art, a.port, a.workers, VITRINE_WARM_ANALYTICS="false", VITRINE_EXPLORE_RATE=str(a.rate),
                              VITRINE_EXPLORE_POSITIONS=str(k), VITRINE_EXPLORE_PLACEMENTS='["home"]')
        try:
            wait_ready(host)
            r = simulate(host, a.data, SimConfig(sessions=a.sessions, seed=7, k=k, concurrency=16, max_seconds=1800,
                                                 arms=(0.5, 0.0, 0.25, 0.25)))
        finally:
            server.terminate()
            server.wait(60)
        log = logged_lists(log_dir(art), "home")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; uvicorn, "
          f"{a.workers} workers; bundle {(a.artifacts / 'CURRENT').read_text().strip()}; {r.sessions:,} sessions "
          f"({r.failed} failed); home pages explored at rate {a.rate} over the top {k}; "
          f"{time.perf_counter() - t0:.0f} s in all")
    print("| candidate | from the home log: IPS (95 % interval) | SNIPS | measured online (placement, lists) | "
          "IPS error | SNIPS error |\n|---|---|---|---|---|---|")
    worst = 0.0
    for cand, arm in MEASURED.items():
        est = estimate(log, cand, k, placement="home")
        online = r.clicks[arm] / (r.lists[arm] * k)
        e_ips, e_snips = est.ips / online - 1, est.snips / online - 1
        worst = max(worst, abs(e_ips), abs(e_snips))
        print(f"| {cand} | {est.ips:.4f} ({est.ips_low:.4f} .. {est.ips_high:.4f}) | {est.snips:.4f} | "
              f"{online:.4f} ({arm}, {r.lists[arm]:,}) | {e_ips:+.1%} | {e_snips:+.1%} |")
    print(f"home: {est.lists:,} logged lists; the service's own ordering: IPS {estimate(log, 'logged', k).ips:.4f}; "
          f"largest error {worst:.1%} (target <= 15 %)")


if __name__ == "__main__":
    main()
