"""The real server (uvicorn on loopback) under a closed-loop load generator (locust), in one run:
/v1/recommendations next to a trivial JSON endpoint of the same server (the framework's ceiling).

    .venv/bin/pip install locust      # bench-only dependency
    .venv/bin/python bench/serving_bench.py --artifacts artifacts [--clients 16] [--seconds 30]

Request mix for /v1/recommendations: 80 % known shoppers (random users with history), 15 %
anonymous sessions (3 recent item ids), 5 % nobody (popular fallback); k = 10, in-stock filter on.
Prints requests/s and p50/p95/p99 latency for both endpoints and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).parents[1]


def bodies(bundle: Path, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    users = pd.read_parquet(bundle / "users.parquet", columns=["user_id", "history"])
    known = users[users["history"].map(len) > 0]["user_id"].to_numpy()
    items = pd.read_parquet(bundle / "items.parquet", columns=["item_id"])["item_id"].to_numpy()
    out = []
    for _ in range(n):
        p = rng.random()
        if p < 0.8:
            out.append({"user_id": str(rng.choice(known)), "k": 10})
        elif p < 0.95:
            out.append({"recent_item_ids": [str(i) for i in rng.choice(items, 3)], "k": 10})
        else:
            out.append({"k": 10})
    return out


def wait_ready(url: str, timeout: float = 300) -> dict:
    t = time.time()
    while time.time() - t < timeout:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("server did not become ready")


def locust(user_class: str, host: str, clients: int, seconds: int, env: dict, out: Path) -> dict:
    prefix = out / user_class
    subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), user_class,
                    "--headless", "-u", str(clients), "-r", str(clients), "-t", f"{seconds}s", "--host", host,
                    "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"rps": float(row["Requests/s"]), "p50": float(row["50%"]), "p95": float(row["95%"]),
            "p99": float(row["99%"]), "requests": int(row["Request Count"]), "failures": int(row["Failure Count"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--port", type=int, default=8765)
    a = ap.parse_args()
    version = (a.artifacts / "CURRENT").read_text().strip()
    bundle = a.artifacts / "bundles" / version
    host = f"http://127.0.0.1:{a.port}"
    env = os.environ | {"VITRINE_ARTIFACTS_DIR": str(a.artifacts)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port",
                               str(a.port), "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT)
    try:
        ready = wait_ready(host)
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            (t / "bodies.jsonl").write_text("\n".join(json.dumps(b) for b in bodies(bundle, 5000)))
            lenv = env | {"VITRINE_BENCH_BODIES": str(t / "bodies.jsonl")}
            locust("RecommendUser", host, a.clients, 5, lenv, t)  # warm-up
            ping = locust("PingUser", host, a.clients, a.seconds, lenv, t)
            rec = locust("RecommendUser", host, a.clients, a.seconds, lenv, t)
    finally:
        server.terminate()
        server.wait(30)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; server: uvicorn, 1 worker, on the same cores as "
          f"the load generator (locust, 1 process); bundle {version} ({ready['items']:,} items); "
          f"{a.clients} closed-loop clients, {a.seconds} s per endpoint")
    print("| endpoint | requests/s | p50 ms | p95 ms | p99 ms | failures |\n| --- | --- | --- | --- | --- | --- |")
    for name, m in (("GET /v1/ping (trivial JSON)", ping), ("POST /v1/recommendations", rec)):
        print(f"| {name} | {m['rps']:.0f} | {m['p50']:.0f} | {m['p95']:.0f} | {m['p99']:.0f} | {m['failures']} |")
    print(f"recommendations reach {rec['rps'] / ping['rps']:.0%} of the trivial endpoint's requests/s "
          f"(target >= 35 %); p99 {rec['p99']:.0f} ms (target <= 50 ms)")


if __name__ == "__main__":
    main()
