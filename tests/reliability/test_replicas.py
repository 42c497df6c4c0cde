"""Two replicas as real `vitrine serve` processes: each with an empty disk of its own, the bundle from
a file:// object store, the live state in one real Redis. A change taken by one is served by the
other within a second; a replica killed (SIGKILL) in the middle of a stream of changes and started
again has every acknowledged change exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bundle.object_store import push
from bundle.versions import current_version
from tests.redis_server import RedisServer
from tests.reliability.server import free_port
from tests.serving.conftest import TOKEN

ROOT = Path(__file__).parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _start(disk: Path, port: int, store: str, state: str) -> subprocess.Popen:
    env = os.environ | {"VITRINE_BUNDLE_STORE": store, "VITRINE_STATE_URL": state, "VITRINE_CHANGES_POLL_S": "0.2",
                        "VITRINE_CANDIDATES": "50", "VITRINE_EVENTS": "false"}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--artifacts", str(disk), "--port",
                             str(port), "--admin-token", TOKEN], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL)


def _ready(base: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).json().get("status") == "ready":
                return
        except (httpx.HTTPError, ValueError):
            pass
        assert time.time() < deadline, f"{base} not ready"
        time.sleep(0.3)


def _price(base: str, item: str) -> float:
    return httpx.get(f"{base}/v1/items/{item}", timeout=5).json()["price"]


@pytest.mark.slow
def test_replicas_converge_and_a_killed_one_loses_and_doubles_nothing(artifacts: Path, tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    version = current_version(artifacts)
    push(artifacts, version, store)
    redis = RedisServer(tmp_path / "redis").start()
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [_start(tmp_path / f"disk{i}", ports[i], store, redis.url) for i in range(2)]
    try:
        for b in bases:
            _ready(b)
        items = [r["item_id"] for r in httpx.post(f"{bases[0]}/v1/recommendations", timeout=10,
                                                  json={"k": 5, "in_stock_only": False}).json()["items"]]
        # one change through replica 0, served by replica 1 within a second
        t0 = time.perf_counter()
        assert httpx.patch(f"{bases[0]}/v1/items/{items[0]}", headers=AUTH, json={"price": 11.5}).status_code == 200
        while _price(bases[1], items[0]) != 11.5:
            assert time.perf_counter() - t0 < 1.0, "replica 1 did not serve the change within 1 s"
            time.sleep(0.02)

        # a stream of changes through replica 0 while replica 1 is killed and started again
        acked = {}
        for i in range(30):
            item = items[i % len(items)]
            if i == 10:
                os.killpg(procs[1].pid, signal.SIGKILL)
                procs[1].wait(10)
            if i == 20:
                procs[1] = _start(tmp_path / "disk1", ports[1], store, redis.url)
            r = httpx.patch(f"{bases[0]}/v1/items/{item}", headers=AUTH, json={"price": 100.0 + i}, timeout=10)
            assert r.status_code == 200
            acked[item] = 100.0 + i
        _ready(bases[1])
        deadline = time.time() + 5
        while {it: _price(bases[1], it) for it in acked} != acked:
            assert time.time() < deadline, "the restarted replica is missing acknowledged changes"
            time.sleep(0.1)
        assert {it: _price(bases[0], it) for it in acked} == acked
        # exactly the acknowledged changes are in the log, each once (the first one + 30)
        import redis as redis_py

        n = redis_py.Redis.from_url(redis.url).xlen(f"vitrine:live/{version}/changes")
        assert n == 31
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)
        redis.kill()
