"""Workers with a socket each (serving/workers.py): the kernel spreads connections over them, and a
dead worker's replacement takes over its socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.workers import Workers, reuseport_sockets

ROOT = Path(__file__).parents[2]


def _pids(base: str, n: int) -> list[int]:
    """The worker answering each of ``n`` fresh connections (one client per connection)."""
    out = []
    for _ in range(n):
        with httpx.Client(base_url=base, timeout=5) as c:
            out.append(c.get("/pid").json()["pid"])
    return out


@pytest.fixture
def two_workers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from serving.workers import run; run('tests.serving.pid_app:create_app', host='127.0.0.1', "
            f"port={port}, workers=2, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if len(set(_pids(base, 16))) == 2:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.time() < deadline, "two workers did not both answer"
        time.sleep(0.3)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_connections_are_spread_and_a_dead_worker_is_replaced(two_workers: str) -> None:
    pids = _pids(two_workers, 64)
    counts = sorted(pids.count(p) for p in set(pids))
    assert len(counts) == 2 and counts[0] >= 12, counts  # binomial(64, ½): below 12 has odds under 1e-6
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 60
    while True:  # the supervisor replaces it on the same socket; no connection is refused meanwhile
        now = set(_pids(two_workers, 16))
        if len(now) == 2 and victim not in now:
            break
        assert time.time() < deadline, now
        time.sleep(0.5)


def test_every_worker_needs_a_socket() -> None:
    from uvicorn import Config

    socks = reuseport_sockets("127.0.0.1", 0, 2)
    try:
        assert socks[0].getsockname() == socks[1].getsockname()  # one address, two listeners
        with pytest.raises(ValueError, match="3 workers need as many sockets"):
            Workers(Config("tests.serving.pid_app:create_app", factory=True, workers=3), socks)
    finally:
        for s in socks:
            s.close()
