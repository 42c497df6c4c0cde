"""Workers on one port: uvicorn's shared listening socket against a socket per worker (SO_REUSEPORT,
serving/workers.py, what `vitrine serve` runs), and one worker as the baseline, alternated in one run.

    .venv/bin/python bench/workers_bench.py --artifacts artifacts [--workers 2] [--rounds 4] [--seconds 15]

Each round starts each server afresh (connections are spread when wrk opens them), warms it up, then
runs wrk (16 connections, the storefront mix of bench/serving_bench.py) and reads, mid-run, how many
connections each worker process holds (`ss`), and over the run the mean number of runnable threads
and the share of CPU time the hypervisor took (steal), from /proc/stat. Prints every round, then
the median requests/s and p99 of each set-up and the ratio of N workers to one.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from serving_bench import LUA, bodies, start_server, wait_ready

ROOT = Path(__file__).parents[1]


def start(mode: str, artifacts: Path, port: int, workers: int) -> subprocess.Popen:
    if mode == "shared":  # plain uvicorn: every worker accepts on the one socket
        return start_server(artifacts, port, workers)
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--artifacts", str(artifacts), "--port",
                             str(port), "--workers", str(1 if mode == "one" else workers)],
                            cwd=ROOT, stdout=subprocess.DEVNULL)


def split(port: int) -> list[int]:
    """Established connections per server process, largest first."""
    ss = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                        text=True).stdout
    return sorted(collections.Counter(re.findall(r"pid=(\d+)", ss)).values(), reverse=True)


def cpu_stat() -> tuple[list[int], int]:
    """/proc/stat: the summed cpu times (user .. steal) and the threads runnable now."""
    lines = Path("/proc/stat").read_text().splitlines()
    times = [int(x) for x in lines[0].split()[1:9]]
    running = next(int(ln.split()[1]) for ln in lines if ln.startswith("procs_running"))
    return times, running


def one_round(mode: str, a: argparse.Namespace, lua: Path) -> dict:
    server = start(mode, a.artifacts, a.port, a.workers)
    try:
        wait_ready(f"http://127.0.0.1:{a.port}")
        url = f"http://127.0.0.1:{a.port}"
        subprocess.run(["wrk", "-t1", "-c16", "-d3s", "-s", str(lua), url], check=True, capture_output=True)
        p = subprocess.Popen(["wrk", "-t1", f"-c{a.clients}", f"-d{a.seconds}s", "-s", str(lua), url],
                             stdout=subprocess.PIPE, text=True)
        t0, runnable = cpu_stat()[0], []
        for i in range(a.seconds * 4 - 2):  # the run queue, sampled every 0.25 s
            time.sleep(0.25)
            runnable.append(cpu_stat()[1] - 1)  # less this sampler
            if i == a.seconds * 2:
                conns = split(a.port)
        t1 = cpu_stat()[0]
        out = p.communicate()[0]
    finally:
        server.terminate()
        server.wait(30)
    n, _, dur_us, _, _, p99 = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out).groups()
    d = [b - a_ for a_, b in zip(t0, t1, strict=True)]
    return {"mode": mode, "rps": int(n) / (float(dur_us) / 1e6), "p99": float(p99) / 1e3, "split": conns,
            "steal": d[7] / max(sum(d), 1), "runnable": statistics.mean(runnable)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--port", type=int, default=8766)
    a = ap.parse_args()
    a.artifacts = a.artifacts.resolve()
    version = (a.artifacts / "CURRENT").read_text().strip()
    modes = ("one", "shared", "reuseport")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "rec.lua"
        lua.write_text(LUA % ",".join(json.dumps(json.dumps(b)) for b in bodies(a.artifacts / "bundles" / version,
                                                                                  2000)))
        for r in range(a.rounds):
            for mode in modes:
                rows.append(one_round(mode, a, lua) | {"round": r + 1})
                m = rows[-1]
                print(f"round {r + 1} {mode:<9} {m['rps']:7.0f} req/s  p99 {m['p99']:6.1f} ms  connections per "
                      f"worker {m['split']}  runnable threads {m['runnable']:.1f}  steal {m['steal']:.0%}", flush=True)
    print(f"\n{date.today()}, {platform.machine()}, {os.cpu_count()} cores, wrk (1 thread) beside the server; bundle "
          f"{version}; {a.clients} connections, {a.seconds} s per round, {a.rounds} rounds alternated")
    print("| set-up | requests/s (median) | p99 ms (median) | rounds at an even split |\n| --- | --- | --- | --- |")
    med = {}
    for mode in modes:
        got = [m for m in rows if m["mode"] == mode]
        med[mode] = statistics.median(m["rps"] for m in got)
        even = sum(1 for m in got if len(m["split"]) == (1 if mode == "one" else a.workers)
                   and max(m["split"]) - min(m["split"]) <= a.clients // 4)
        label = {"one": "1 worker", "shared": f"{a.workers} workers, one shared socket (uvicorn --workers)",
                 "reuseport": f"{a.workers} workers, a socket each (vitrine serve)"}[mode]
        print(f"| {label} | {med[mode]:.0f} | {statistics.median(m['p99'] for m in got):.1f} | {even}/{len(got)} |")
    print(f"{a.workers} workers / 1 worker: shared socket {med['shared'] / med['one']:.2f}x, a socket each "
          f"{med['reuseport'] / med['one']:.2f}x (target >= 1.4x)")


if __name__ == "__main__":
    main()
