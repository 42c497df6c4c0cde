"""Resident memory of 1, 2 and 4 service workers on one bundle, with the bundle's arrays and indexes
memory-mapped (shared through the page cache) and, for comparison in the same run, read into each
worker (``VITRINE_MMAP=false``).

    .venv/bin/python bench/worker_memory.py --artifacts bench/out/big [--workers 1 2 4] [--read-workers 1 2]

Each configuration starts ``uvicorn --workers N`` (what ``vitrine serve --workers N`` runs), waits
until every worker has logged its loaded bundle, warms all of them with 10 s of the storefront's
recommendation mix (wrk, 16 connections: the pages a request touches are faulted in), then sums
``/proc/PID/smaps_rollup`` over the workers. PSS (proportional set size) charges a page shared by k
processes 1/k to each, so the sum is what the host really holds; "per extra worker" is
(PSS(N) - PSS(1)) / (N - 1), as a share of PSS(1). With several workers uvicorn adds a supervisor
process and multiprocessing a resource tracker (no bundle; their PSS is their own column).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving_bench import LUA, bodies, wrk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOG_CONFIG = {"version": 1, "disable_existing_loggers": False,
              "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
              "root": {"level": "INFO", "handlers": ["err"]},
              "loggers": {"uvicorn.access": {"level": "WARNING"}}}


def smaps(pid: int) -> dict[str, float]:
    """Rss, Pss and Anonymous of one process, MB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        if key in ("Rss", "Pss", "Anonymous"):
            out[key] = int(value.split()[0]) / 1024
    return out


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def measure(artifacts: Path, workers: int, mmap: bool, port: int, lua: Path) -> dict:
    env = os.environ | {"VITRINE_ARTIFACTS_DIR": str(artifacts), "VITRINE_MMAP": str(mmap).lower()}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(LOG_CONFIG, f)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port",
                               str(port), "--workers", str(workers), "--log-config", f.name, "--no-access-log"],
                              env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        loaded, t0 = 0, time.time()
        while loaded < workers:
            line = server.stderr.readline()
            if not line:
                raise RuntimeError(f"server exited with {server.wait()} before {workers} workers loaded")
            loaded += "loaded bundle" in line
        load_s = time.time() - t0
        # keep reading the log: a full pipe would block the workers' logging (and their requests)
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        host = f"http://127.0.0.1:{port}"
        time.sleep(1)  # the last worker finishes its start-up after logging the load
        rec = wrk(host, 16, 10, lua)
        procs = [server.pid, *children(server.pid)]
        mem = {pid: smaps(pid) for pid in procs}
        helper = {pid: b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in procs}
    finally:
        server.terminate()
        server.wait(60)
        Path(f.name).unlink()
    # one worker runs in uvicorn's own process; several run under a supervisor, beside multiprocessing's
    # resource tracker (both reported apart, as "supervisor")
    ws = [m for pid, m in mem.items() if pid != server.pid and not helper[pid]] or [mem[server.pid]]
    parent = sum(m["Pss"] for pid, m in mem.items() if pid == server.pid or helper[pid]) if workers > 1 else 0.0
    return {"mmap": mmap, "workers": workers, "pss": sum(m["Pss"] for m in ws), "parent": parent,
            "rss_worker": sum(m["Rss"] for m in ws) / len(ws), "anon_worker": sum(m["Anonymous"] for m in ws) / len(ws),
            "load_s": load_s, "rps": rec["rps"], "errors": rec["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--read-workers", type=int, nargs="*", default=[1, 2], help="the same without mapping")
    ap.add_argument("--port", type=int, default=8766)
    a = ap.parse_args()
    version = (a.artifacts / "CURRENT").read_text().strip()
    bundle = a.artifacts / "bundles" / version
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "rec.lua"
        lua.write_text(LUA % ",".join(json.dumps(json.dumps(b)) for b in bodies(bundle, 2000)))
        for mmap, counts in ((True, a.workers), (False, a.read_workers)):
            for n in counts:
                rows.append(measure(a.artifacts, n, mmap, a.port, lua))
                print(rows[-1], flush=True)
    items = json.loads((bundle / "manifest.json").read_text())["dataset"]["items"]
    size = sum(p.stat().st_size for p in bundle.iterdir()) / 2**20
    print(f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores; `{' '.join(sys.argv)}`; "
          f"bundle {version}: {items:,} items, {size:,.0f} MB of files")
    cols = ["bundle arrays", "workers", "workers' PSS MB", "RSS per worker MB", "anonymous per worker MB",
            "per extra worker", "supervisor + tracker PSS MB", "load s", "warm-up requests/s"]
    print("| " + " | ".join(cols) + " |\n" + "| --- " * len(cols) + "|")
    for r in rows:
        first = next(x for x in rows if x["mmap"] == r["mmap"] and x["workers"] == 1)
        extra = ("" if r["workers"] == 1 else f"{(r['pss'] - first['pss']) / (r['workers'] - 1):,.0f} MB = "
                 f"{(r['pss'] - first['pss']) / (r['workers'] - 1) / first['pss']:.0%} of one")
        print(f"| {'mapped' if r['mmap'] else 'read'} | {r['workers']} | {r['pss']:,.0f} | {r['rss_worker']:,.0f} | "
              f"{r['anon_worker']:,.0f} | {extra} | {r['parent']:.0f} | {r['load_s']:.0f} | "
              f"{r['rps']:.0f} ({r['errors']} errors) |")


if __name__ == "__main__":
    main()
