"""Unauthenticated exhaustion and the numba cache (issue 28, findings 4 and 5). Before: 60 concurrent
anonymous exposure requests with alternating parameters recomputed every time on every worker
thread, and /healthz (a plain ``def`` on the same pool) took 1.96 s, failing a 1 s liveness probe;
a pickle planted in the world-writable /tmp/vitrine-numba ran on the next call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from common.jit import private_dir
from serving.analytics import ExposureCache
from serving.app import create_app
from serving.settings import ServingSettings
from tests.reliability.server import serve_in_thread
from tests.serving.conftest import READ, READ_TOKEN, TOKEN, make_client

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):
    art = tmp_path_factory.mktemp("exhaust") / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    app = create_app(ServingSettings(artifacts_dir=art, admin_token=TOKEN, read_token=READ_TOKEN, candidates=50,
                                     warm_analytics=False))
    with serve_in_thread(app) as base:
        yield base, app


def test_anonymous_analytics_cost_nothing(server) -> None:
    base, app = server
    t = time.perf_counter()
    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda i: httpx.get(f"{base}/v1/analytics/exposure?shoppers={10 + i}&k={1 + i % 50}",
                                                  timeout=30).status_code, range(60)))
    assert set(codes) == {401} and time.perf_counter() - t < 10
    assert len(app.state.service.exposure_cache.entries) == 0  # nothing was computed


def test_liveness_answers_while_every_worker_thread_is_busy(server) -> None:
    base, _ = server
    busy = [f"{base}/v1/analytics/exposure?shoppers={10 + i}&k={1 + i % 50}" for i in range(60)]
    with ThreadPoolExecutor(60) as pool:
        running = [pool.submit(httpx.get, url, headers=READ, timeout=120) for url in busy]
        time.sleep(0.3)  # the pool's threads are taken by now
        worst = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for route in ("/healthz", "/readyz"):
                assert httpx.get(base + route, timeout=5).status_code == 200
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.1)
        assert all(f.result().status_code == 200 for f in running)
    assert worst < 1.0, worst  # both on the event loop, never behind the analytics threads


def test_the_exposure_cache_keeps_a_bounded_number_of_samples(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts, warm_analytics=False) as c:
        cache: ExposureCache = c.app.state.service.exposure_cache
        for n in range(10, 30):
            assert c.get(f"/v1/analytics/exposure?shoppers={n}&k=3", headers=READ).status_code == 200
        assert len(cache.entries) == cache.size == 4
        t = time.perf_counter()
        c.get("/v1/analytics/exposure?shoppers=29&k=3", headers=READ)  # the newest: from the cache
        assert time.perf_counter() - t < 0.05


def test_a_numba_cache_another_user_can_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # world-writable, like the old /tmp/vitrine-numba
    assert not private_dir(str(shared))
    mine = tmp_path / "mine"
    assert private_dir(str(mine)) and (mine.stat().st_mode & 0o777) == 0o700
    if os.getuid() == 0:  # CI runs as root: a directory owned by someone else
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 12345, 12345)
        assert not private_dir(str(theirs))
    code = "import common.jit as j; print(j.CACHE)"
    for path, want in ((shared, "False"), (tmp_path / "fresh", "True")):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             env=os.environ | {"NUMBA_CACHE_DIR": str(path)})
        assert out.stdout.strip() == want, out.stderr
