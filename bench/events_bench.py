"""The closed loop's costs on the real server (uvicorn on loopback) under wrk, in one run:

1. ingest: POST /v1/events in batches of 100 events, then one event per request (every event a new
   event_id: all of them validated, written, fsync'ed (group commit) and applied to the real-time state);
2. the served-list log: POST /v1/recommendations with events on and off (alternating server starts,
   twice each), the same request mix as bench/serving_bench.py.

    .venv/bin/python bench/events_bench.py --artifacts artifacts [--seconds 20] [--workers 1]

The server writes its logs under a scratch artifacts directory that links the bundle CURRENT names.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from serving_bench import LUA, bodies, start_server, wait_ready, wrk  # noqa: E402

ROOT = Path(__file__).parents[1]
EVENTS_LUA = """
template = %s
counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(template, "@ID@", "c" .. counter)
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%f\\n", summary.requests, summary.errors.status
    + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def scratch_artifacts(artifacts: Path, tmp: Path) -> Path:
    """An artifacts directory whose CURRENT bundle is the real one (linked), with its own logs."""
    version = (artifacts / "CURRENT").read_text().strip()
    out = tmp / "artifacts"
    (out / "bundles").mkdir(parents=True)
    (out / "bundles" / version).symlink_to((artifacts / "bundles" / version).resolve())
    (out / "CURRENT").write_text(version + "\n")
    return out


def event_template(bundle: Path, n: int) -> str:
    users = pd.read_parquet(bundle / "users.parquet", columns=["user_id"])["user_id"].astype(str).tolist()
    items = pd.read_parquet(bundle / "items.parquet", columns=["item_id"])["item_id"].astype(str).tolist()
    events = [{"event_id": f"@ID@-{j}", "type": "view", "user_id": users[(7 * j) % len(users)],
               "item_id": items[(13 * j) % len(items)]} for j in range(n)]
    return json.dumps({"events": events})


def start(art: Path, port: int, workers: int, events: bool) -> subprocess.Popen:
    # the console's exposure sample is not computed at start (it would share the core with the first runs)
    return start_server(art, port, workers, VITRINE_EVENTS=str(events).lower(), VITRINE_WARM_ANALYTICS="false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--clients", type=int, default=16)
    a = ap.parse_args()
    host = f"http://127.0.0.1:{a.port}"
    with tempfile.TemporaryDirectory() as tmp:
        art = scratch_artifacts(a.artifacts, Path(tmp))
        version = (art / "CURRENT").read_text().strip()
        bundle = art / "bundles" / version
        scripts = {}
        for name, n in (("batch", 100), ("single", 1)):
            scripts[name] = Path(tmp) / f"{name}.lua"
            scripts[name].write_text(EVENTS_LUA % json.dumps(event_template(bundle, n)))
        rec_lua = Path(tmp) / "rec.lua"
        rec_lua.write_text(LUA % ",".join(json.dumps(json.dumps(b)) for b in bodies(bundle, 2000)))
        res: dict = {"rec_on": [], "rec_off": []}
        for events in (True, False, True, False):
            server = start(art, a.port, a.workers, events)
            try:
                wait_ready(host)
                wrk(host, a.clients, 5, rec_lua)  # warm-up
                res["rec_on" if events else "rec_off"].append(wrk(host, a.clients, a.seconds, rec_lua))
                if events and "batch" not in res:
                    res["batch"] = wrk(host, a.clients, a.seconds, scripts["batch"])
                    res["single"] = wrk(host, a.clients, a.seconds, scripts["single"])
            finally:
                server.terminate()
                server.wait(30)
        logged = sum(p.stat().st_size for p in (art / "events").rglob("*") if p.is_file())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; uvicorn, {a.workers} worker(s), sharing the cores "
          f"with wrk (1 thread); bundle {version}; {a.clients} connections, {a.seconds} s per run")
    print("| load | requests/s | events/s | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|")
    for name, n in (("batch", 100), ("single", 1)):
        m = res[name]
        print(f"| POST /v1/events, {n} per request | {m['rps']:,.0f} | {m['rps'] * n:,.0f} | {m['p50']:.1f} | "
              f"{m['p95']:.1f} | {m['p99']:.1f} | {m['errors']} |")
    for key, label in (("rec_on", "on"), ("rec_off", "off")):
        for i, m in enumerate(res[key]):
            print(f"| POST /v1/recommendations, served-list log {label} (run {i + 1}) | {m['rps']:,.0f} | | "
                  f"{m['p50']:.1f} | {m['p95']:.1f} | {m['p99']:.1f} | {m['errors']} |")
    on = sum(m["rps"] for m in res["rec_on"]) / len(res["rec_on"])
    off = sum(m["rps"] for m in res["rec_off"]) / len(res["rec_off"])
    print(f"events/s in batches of 100: {res['batch']['rps'] * 100:,.0f} (target >= 20,000); single-event requests/s "
          f"{res['single']['rps']:,.0f} (target >= 2,000) at p99 {res['single']['p99']:.1f} ms (target <= 20 ms)")
    print(f"served-list logging: recommendations {on:,.0f} req/s on vs {off:,.0f} off: {on / off - 1:+.1%} "
          f"(target: costs <= 5 %); {logged / 1e6:.0f} MB of logs written")


if __name__ == "__main__":
    main()
