"""The real server (uvicorn on loopback) under a closed-loop load generator (wrk), in one run:
/v1/recommendations next to a trivial JSON endpoint of the same server (the framework's ceiling).

    apt-get install -y wrk            # bench-only tool (C, light enough to share the 2 cores)
    .venv/bin/python bench/serving_bench.py --artifacts artifacts [--clients 16] [--seconds 30]

Request mix for /v1/recommendations: 80 % known shoppers (random users with history), 15 %
anonymous sessions (3 recent item ids), 5 % nobody (popular fallback); k = 10, in-stock filter on.
Prints requests/s and p50/p95/p99 latency for both endpoints and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).parents[1]
LUA = """
bodies = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/recommendations", {["Content-Type"] = "application/json"},
                    bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%f\\n", summary.requests, summary.errors.status
    + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def bodies(bundle: Path, n: int, seed: int = 0, mix: str = "storefront") -> list[dict]:
    """storefront: the mix in the module docstring; nobody: only no-signal requests (popular items,
    no model call) — the route's cost without the model path."""
    if mix == "nobody":
        return [{"k": 10}] * n
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


def start_server(artifacts: Path, port: int, workers: int, **env: str) -> subprocess.Popen:
    """uvicorn on loopback over ``artifacts`` with ``workers`` processes; ``env``: more VITRINE_* settings."""
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port",
                             str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                            env=os.environ | {"VITRINE_ARTIFACTS_DIR": str(artifacts)} | env, cwd=ROOT)


def wait_ready(url: str, timeout: float = 300) -> dict:
    t = time.time()
    while time.time() - t < timeout:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("server did not become ready")


def wrk(url: str, clients: int, seconds: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    n, errors, dur_us, p50, p95, p99 = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out).groups()
    return {"rps": int(n) / (float(dur_us) / 1e6), "p50": float(p50) / 1e3, "p95": float(p95) / 1e3,
            "p99": float(p99) / 1e3, "requests": int(n), "errors": int(errors)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--mix", choices=["storefront", "nobody"], default="storefront")
    a = ap.parse_args()
    version = (a.artifacts / "CURRENT").read_text().strip()
    bundle = a.artifacts / "bundles" / version
    host = f"http://127.0.0.1:{a.port}"
    server = start_server(a.artifacts, a.port, a.workers, VITRINE_PUBLIC_METRICS="true")  # /metrics read below
    try:
        ready = wait_ready(host)
        with tempfile.TemporaryDirectory() as tmp:
            lua = Path(tmp) / "rec.lua"
            lua.write_text(LUA % ",".join(json.dumps(json.dumps(b)) for b in bodies(bundle, 2000, mix=a.mix)))
            ping_lua = Path(tmp) / "ping.lua"
            ping_lua.write_text(LUA.split("request =")[0].replace("bodies = {%s}", "") +
                                "done =" + LUA.split("done =")[1].replace("%%", "%"))
            wrk(host, a.clients, 5, lua)  # warm-up
            rss0 = rss_mb(server.pid)
            ping = wrk(host + "/v1/ping", a.clients, a.seconds, ping_lua)
            rec = wrk(host, a.clients, a.seconds, lua)
            rss1 = rss_mb(server.pid)
            with urllib.request.urlopen(host + "/metrics", timeout=5) as r:
                m = dict(re.findall(r"^vitrine_batch_requests_(sum|count) (\S+)$", r.read().decode(), re.M))
            batch = float(m["sum"]) / max(float(m["count"]), 1.0)
    finally:
        server.terminate()
        server.wait(30)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; server: uvicorn, {a.workers} worker(s), sharing "
          f"the cores with the load generator (wrk, 1 thread); bundle {version} ({ready['items']:,} items); "
          f"{a.clients} closed-loop connections, {a.seconds} s per endpoint; request mix: {a.mix}")
    print("| endpoint | requests/s | p50 ms | p95 ms | p99 ms | errors |\n| --- | --- | --- | --- | --- | --- |")
    for name, m in (("GET /v1/ping (trivial JSON)", ping), ("POST /v1/recommendations", rec)):
        print(f"| {name} | {m['rps']:.0f} | {m['p50']:.1f} | {m['p95']:.1f} | {m['p99']:.1f} | {m['errors']} |")
    print(f"recommendations reach {rec['rps'] / ping['rps']:.0%} of the trivial endpoint's requests/s "
          f"(target >= 40 %); p99 {rec['p99']:.1f} ms (target <= 25 ms); {batch:.1f} requests per model batch "
          "on average (warm-up included)")
    print(f"server RSS ({a.workers} worker(s) and their parent) after warm-up {rss0:.0f} MB, after both loads "
          f"{rss1:.0f} MB ({rss1 - rss0:+.0f} MB over {(rec['rps'] + ping['rps']) * a.seconds:,.0f} requests)")


def rss_mb(pid: int) -> float:
    """Resident memory of the server: the uvicorn process and, with several workers, its children."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    return total


if __name__ == "__main__":
    main()
