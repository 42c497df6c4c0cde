"""The real server (uvicorn on loopback) under concurrent load while bundles are swapped: no failed
request, each answer labelled with exactly one of the versions, each swap quick, memory bounded."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bundle.versions import promote
from tests.reliability.server import free_port, republish
from tests.serving.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).parents[2]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_swaps_under_load_fail_no_request(artifacts: Path) -> None:
    v1, v2 = republish(artifacts)
    port = free_port()
    env = os.environ | {"VITRINE_ARTIFACTS_DIR": str(artifacts), "VITRINE_ADMIN_TOKEN": TOKEN,
                        "VITRINE_CANDIDATES": "50"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port",
                               str(port), "--no-access-log", "--log-level", "warning"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        rss0 = _rss_mb(server.pid)
        results: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def shopper() -> None:
            with httpx.Client(base_url=base, timeout=10) as c:
                while not stop.is_set():
                    r = c.post("/v1/recommendations", json={"k": 5, "in_stock_only": False})
                    results.append((r.status_code, r.json().get("bundle_version")))

        threads = [threading.Thread(target=shopper) for _ in range(4)]
        for t in threads:
            t.start()
        flips = []
        with httpx.Client(base_url=base, timeout=60) as admin:
            for i in range(6):
                time.sleep(0.3)
                promote(artifacts, v2 if i % 2 == 0 else v1)
                t0 = time.perf_counter()
                r = admin.post("/admin/reload", headers=AUTH)
                flips.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        rss1 = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    codes = [c for c, _ in results]
    versions = {v for _, v in results}
    assert len(results) > 100 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    assert versions == {v1, v2}  # both served, nothing else, never a mix
    assert max(flips) < 10.0  # load + replay + smoke + swap
    assert rss1 - rss0 < 300, (rss0, rss1)  # six swaps of a tiny bundle: the old ones are freed
