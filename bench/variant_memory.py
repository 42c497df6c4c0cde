"""What holding an experiment's bundle beside the live one costs a worker (docs/experiments.md):
resident memory of one service process before and after a second copy of the bundle loads through
the path experiments use (serving/reload.py ``load_for_service``), and the live requests' speed
with the second bundle held.

    .venv/bin/python bench/variant_memory.py --artifacts artifacts
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.reload import load_for_service
from serving.settings import ServingSettings


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    a = ap.parse_args()
    settings = ServingSettings(artifacts_dir=a.artifacts, events=False)
    with TestClient(create_app(settings)) as c:
        state = c.app.state.service
        for _ in range(50):  # warm: the live path's arenas and caches
            c.post("/v1/recommendations", json={"k": 10, "placement": "home"})
        gc.collect()
        before = rss_mib()
        t = time.perf_counter()
        second = load_for_service(state, state.bundle.version)
        secs = time.perf_counter() - t
        gc.collect()
        after = rss_mib()
        del second
        gc.collect()
        freed = rss_mib()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; bundle "
          f"{(a.artifacts / 'CURRENT').read_text().strip()}")
    print(f"one worker: {before:,.0f} MiB with the live bundle; {after:,.0f} MiB with a variant bundle beside it "
          f"(+{after - before:,.0f} MiB, loaded in {secs:.1f} s); {freed:,.0f} MiB after it is dropped")


if __name__ == "__main__":
    main()
