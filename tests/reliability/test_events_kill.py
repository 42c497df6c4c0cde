"""Nothing acknowledged is lost, nothing is counted twice (docs/online.md): a two-worker server is
killed with SIGKILL at random points while a client streams event batches; the client retries what
was not acknowledged (as a storefront does), and after the last restart every acknowledged event is
in the log exactly once, and nothing else is."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pyarrow import parquet as pq

from bundle.logs import jsonl_files, log_dir, parquet_files, read_lines
from bundle.versions import bundles_dir, current_version
from tests.reliability.server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start(artifacts: Path, port: int) -> subprocess.Popen:
    env = os.environ | {"VITRINE_CANDIDATES": "50", "VITRINE_EVENTS_SEGMENT_AGE_S": "0.5",
                        "VITRINE_EVENTS_GRACE_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--artifacts", str(artifacts),
                             "--workers", "2", "--port", str(port)], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("the server did not become ready")


def _logged(artifacts: Path) -> Counter:
    root = log_dir(artifacts)
    ids = [r.get("event_id") for p in jsonl_files(root, "events") for r in read_lines(p)[0]]
    for p in parquet_files(root, "events"):
        ids += pq.read_table(p, columns=["event_id"]).column(0).to_pylist()
    return Counter(ids)


def test_sigkill_mid_stream_loses_nothing_acknowledged_and_doubles_nothing(artifacts: Path) -> None:
    items = pd.read_parquet(bundles_dir(artifacts) / current_version(artifacts) / "items.parquet", columns=["item_id"])
    item_ids = items["item_id"].astype(str).tolist()
    rng = random.Random(29)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    acked: set[str] = set()
    pending: list[list[dict]] = []  # batches not acknowledged yet: sent again until they are
    lock, stop = threading.Lock(), threading.Event()
    sent, retried = [0], [0]

    def stream(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=base, timeout=5) as c:
            while not stop.is_set():
                with lock:
                    batch = pending.pop() if pending else None
                if batch is None:
                    batch = [{"event_id": f"w{worker}-{n + j}", "type": "view", "user_id": f"u{(n + j) % 97}",
                              "item_id": item_ids[(n + j) % len(item_ids)]} for j in range(50)]
                    n += 50
                    sent[0] += 50
                try:
                    r = c.post("/v1/events", json={"events": batch})
                    ok = r.status_code == 200 and not r.json()["rejected"]
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        acked.update(e["event_id"] for e in batch)
                    else:
                        pending.append(batch)
                        retried[0] += 1
                if not ok:
                    time.sleep(0.05)

    server = _start(artifacts, port)
    clients = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
    for t in clients:
        t.start()
    try:
        for _ in range(4):  # kill at random points, restart
            time.sleep(rng.uniform(0.5, 2.5))
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            server = _start(artifacts, port)
        time.sleep(1.0)
        stop.set()
        for t in clients:
            t.join(30)
        deadline = time.monotonic() + 60  # the retries of what the last kill cut short
        with httpx.Client(base_url=base, timeout=10) as c:
            while pending and time.monotonic() < deadline:
                batch = pending.pop()
                r = c.post("/v1/events", json={"events": batch})
                assert r.status_code == 200, r.text
                acked.update(e["event_id"] for e in batch)
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert not pending and len(acked) == sent[0] > 1000 and retried[0] > 0  # the kills cut batches short
    logged = _logged(artifacts)
    twice = {i: n for i, n in logged.items() if n > 1}
    assert not twice, f"{len(twice)} events logged more than once, e.g. {list(twice.items())[:3]}"
    assert set(logged) == acked  # every acknowledged event, and nothing else
