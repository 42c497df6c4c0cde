"""`vitrine serve --workers 2` on loopback: every worker maps the bundle, follows the other's admin
changes through the change log and reloads when CURRENT moves (the watcher runs in each worker)."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from bundle.versions import bundles_dir, promote
from common.threads import cores_available
from tests.reliability.server import free_port, republish
from tests.serving.conftest import TOKEN

ROOT = Path(__file__).parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _workers(base: str, want: int = 2, timeout: float = 60) -> dict[int, dict]:
    """The latest /readyz answer of each worker, polling on fresh connections until ``want`` answered."""
    seen: dict[int, dict] = {}
    deadline = time.time() + timeout

    def ask(_: int) -> dict | None:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None

    with ThreadPoolExecutor(8) as pool:
        while len(seen) < want:
            assert time.time() < deadline, f"only workers {sorted(seen)} answered"
            for r in pool.map(ask, range(16)):
                if r and r.get("worker") and r["status"] == "ready":
                    seen[r["worker"]] = r
    return seen


def _until(base: str, ok, timeout: float = 30) -> dict[int, dict]:
    deadline = time.time() + timeout
    while True:
        got = _workers(base)
        if all(ok(r) for r in got.values()):
            return got
        assert time.time() < deadline, got
        time.sleep(0.3)


@pytest.mark.slow
def test_two_workers_share_changes_and_reload_together(artifacts: Path) -> None:
    v1, v2 = republish(artifacts)
    items = pd.read_parquet(bundles_dir(artifacts) / v1 / "items.parquet", columns=["item_id"])
    item = str(items["item_id"].iloc[0])
    port = free_port()
    env = os.environ | {"VITRINE_CHANGES_POLL_S": "0.2", "VITRINE_CANDIDATES": "50"}
    server = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--artifacts", str(artifacts),
                               "--workers", "2", "--watch", "0.3", "--port", str(port), "--admin-token", TOKEN],
                              env=env, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        first = _workers(base)
        assert len(first) == 2 and {r["bundle_version"] for r in first.values()} == {v1}
        share = max(1, cores_available() // 2)  # each worker sized its pools to its share of the cores
        assert all(r["threads"] == {"cores": cores_available(), "workers": 2, "ort": 1, "faiss": 1, "blas": share,
                                    "numba": share} for r in first.values()), first
        n = next(iter(first.values()))["items"]
        # one worker takes the admin call; the other applies it from the change log
        assert httpx.delete(f"{base}/v1/items/{item}", headers=AUTH, timeout=10).status_code == 200
        _until(base, lambda r: r["items"] == n - 1)
        promote(artifacts, v2)  # no /admin/reload: each worker's watcher sees CURRENT move
        after = _until(base, lambda r: r["bundle_version"] == v2)
        assert set(after) == set(first)  # the same processes, reloaded in place
        r = httpx.post(f"{base}/v1/recommendations", json={"k": 5}, timeout=10)
        assert r.status_code == 200 and r.json()["bundle_version"] == v2
    finally:
        server.terminate()
        server.wait(timeout=30)
