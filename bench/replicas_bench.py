"""Two replicas on one Redis (VITRINE_STATE_URL), each with an empty disk of its own and the bundle
from a file:// object store: how fast a change taken by one is served by the other, what Redis
holds per change and per shopper event, what a replica costs, and whether Redis touches the
recommendation path (requests/s with the state in Redis against files, alternated).

    .venv/bin/python bench/replicas_bench.py --artifacts artifacts [--changes 200] [--events 20000]

Needs Debian's redis-server and wrk. Redis runs with appendonly yes, appendfsync always.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import redis
from serving_bench import LUA, bodies, rss_mb, wait_ready, wrk

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from bundle.object_store import push  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

TOKEN = "bench-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def start(disk: Path, port: int, store: str, state: str | None) -> subprocess.Popen:
    env = os.environ | {"VITRINE_BUNDLE_STORE": store, "VITRINE_CHANGES_POLL_S": "0.2",
                        "VITRINE_ADMIN_TOKEN": TOKEN} | ({"VITRINE_STATE_URL": state} if state else {})
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--artifacts", str(disk), "--port",
                             str(port)], env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)


def stop(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=15)
    a = ap.parse_args()
    version = (a.artifacts / "CURRENT").read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = f"file://{tmp / 'store'}"
        push(a.artifacts, version, store)
        rs = RedisServer(tmp / "redis").start()
        r = redis.Redis.from_url(rs.url)
        base = [f"http://127.0.0.1:{p}" for p in (8781, 8782)]
        procs = [start(tmp / f"disk{i}", 8781 + i, store, rs.url) for i in range(2)]
        try:
            t0 = time.perf_counter()
            for b in base:
                wait_ready(b)
            cold = time.perf_counter() - t0
            ids = [x["item_id"] for x in httpx.post(f"{base[0]}/v1/recommendations", json={"k": 50,
                                                    "in_stock_only": False}, timeout=10).json()["items"]]
            mem0 = r.info("memory")["used_memory"]
            lag = []
            with httpx.Client(timeout=10) as c:
                for i in range(a.changes):  # a price change through replica 0, polled on replica 1
                    item, price = ids[i % len(ids)], round(10 + i * 0.25, 2)
                    assert c.patch(f"{base[0]}/v1/items/{item}", headers=AUTH, json={"price": price}).is_success
                    t = time.perf_counter()
                    while c.get(f"{base[1]}/v1/items/{item}").json()["price"] != price:
                        time.sleep(0.005)
                    lag.append(time.perf_counter() - t)
            mem1 = r.info("memory")["used_memory"]
            rng = np.random.default_rng(0)
            shoppers = max(1, a.events // 10)
            with httpx.Client(timeout=30) as c:
                for s in range(0, a.events, 500):
                    batch = [{"type": "view", "item_id": str(rng.choice(ids)), "user_id": f"u{rng.integers(shoppers)}"}
                             for _ in range(min(500, a.events - s))]
                    assert c.post(f"{base[0]}/v1/events", json={"events": batch}).json()["accepted"] == len(batch)
            time.sleep(1.0)
            ev_bytes = r.memory_usage("vitrine:events/recent", samples=0) or 0
            ev_n = r.xlen("vitrine:events/recent")
            rss = [rss_mb(p.pid) for p in procs]
        finally:
            for p in procs:
                stop(p)
        # the request path: one replica with the state in Redis against one with files, alternated
        with tempfile.TemporaryDirectory() as t2:
            lua = Path(t2) / "rec.lua"
            lua.write_text(LUA % ",".join(json.dumps(json.dumps(x)) for x in bodies(a.artifacts / "bundles" / version,
                                                                                      2000)))
            rps = {"redis": [], "files": []}
            for rnd in range(2):
                for kind in ("files", "redis"):
                    p = start(tmp / f"solo-{kind}-{rnd}", 8783, store, rs.url if kind == "redis" else None)
                    try:
                        wait_ready("http://127.0.0.1:8783")
                        wrk("http://127.0.0.1:8783", 16, 3, lua)
                        rps[kind].append(wrk("http://127.0.0.1:8783", 16, a.seconds, lua)["rps"])
                    finally:
                        stop(p)
        rs.kill()
    lag_ms = np.array(lag) * 1e3
    print(f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores; bundle {version}; Redis (Debian "
          "redis-server, appendfsync always) on loopback; two replicas (`vitrine serve`, one worker each) on "
          "empty disks, the bundle from a file:// store")
    print(f"both replicas pulled the bundle and turned ready in {cold:.1f} s")
    print(f"a change through replica 0 served by replica 1 ({a.changes} price changes, change poll 0.2 s): "
          f"median {np.median(lag_ms):.0f} ms, p95 {np.percentile(lag_ms, 95):.0f} ms, max {lag_ms.max():.0f} ms")
    print(f"Redis per admin change: {(mem1 - mem0) / a.changes:.0f} bytes (used_memory over {a.changes} changes)")
    print(f"Redis per shopper event in the fan-out stream: {ev_bytes / max(ev_n, 1):.0f} bytes ({ev_n:,} events "
          f"held, {ev_bytes / 2**20:.1f} MiB; the stream keeps about 100,000)")
    print(f"replica resident memory after the run: {rss[0]:.0f} MB and {rss[1]:.0f} MB")
    print(f"recommendations/s, one replica, 16 connections, {a.seconds} s, alternated: state in files "
          f"{', '.join(f'{x:.0f}' for x in rps['files'])}; in Redis {', '.join(f'{x:.0f}' for x in rps['redis'])}; "
          f"ratio of medians {statistics.median(rps['redis']) / statistics.median(rps['files']):.2f}")


if __name__ == "__main__":
    main()
