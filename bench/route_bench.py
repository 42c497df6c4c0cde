"""What FastAPI's conveniences cost per request on the hot route, measured in-process (ASGI calls,
no sockets, one thread), and what a full garbage collection costs with a bundle loaded.

    .venv/bin/python bench/route_bench.py [--artifacts artifacts]

Three routes answer the same canned JSON: a trivial GET; a POST taking the recommendation request
as a FastAPI body parameter plus three ``Depends`` (bundle, settings, state: the first version of
the route); a POST that reads the raw body and validates it with pydantic-core in one call
(``serving.parsing.json_body``, what the route does now). Best of 5 interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

sys.path.insert(0, str(Path(__file__).parents[1]))
from serving.parsing import json_body  # noqa: E402
from serving.schemas import RecommendationRequest  # noqa: E402

CANNED = b'{"items":[],"bundle_version":"x","fallback":null,"user_known":false,"offset":0,"k":10}'
BODY = b'{"user_id": "u00042", "k": 10}'


async def _dep(request: Request) -> object:
    return request.app.state.thing


Dep = Annotated[object, Depends(_dep)]


def build() -> FastAPI:
    app = FastAPI()
    app.state.thing = object()

    @app.get("/ping")
    async def ping() -> dict:
        return {"status": "ok"}

    @app.post("/body-and-deps")
    async def body_and_deps(req: RecommendationRequest, a: Dep, b: Dep, c: Dep) -> Response:
        return Response(CANNED, media_type="application/json")

    @app.post("/raw-body")
    async def raw_body(request: Request) -> Response:
        await json_body(request, RecommendationRequest)
        return Response(CANNED, media_type="application/json")

    return app


async def call(app: FastAPI, method: str, path: str, body: bytes) -> int:
    status = 0

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
               "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
               "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000)}, receive, send)
    return status


async def per_request_us(app: FastAPI, method: str, path: str, body: bytes, n: int) -> float:
    assert await call(app, method, path, body) == 200, path
    t = time.perf_counter()
    for _ in range(n):
        await call(app, method, path, body)
    return (time.perf_counter() - t) / n * 1e6


def gc_pause_ms(artifacts: Path) -> tuple[float, float]:
    from serving.loaded_bundle import load_current
    from serving.settings import ServingSettings

    bundle = load_current(ServingSettings(artifacts_dir=artifacts))  # noqa: F841 (kept alive on purpose)
    gc.collect()
    t = time.perf_counter()
    gc.collect()
    before = (time.perf_counter() - t) * 1e3
    gc.freeze()
    t = time.perf_counter()
    gc.collect()
    after = (time.perf_counter() - t) * 1e3
    gc.unfreeze()
    return before, after


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("-n", type=int, default=20_000)
    a = ap.parse_args()
    app = build()
    routes = {"GET /ping (trivial)": ("GET", "/ping", b""),
              "POST, body parameter + 3 dependencies": ("POST", "/body-and-deps", BODY),
              "POST, raw body validated by pydantic-core": ("POST", "/raw-body", BODY)}
    best = {k: float("inf") for k in routes}
    for _ in range(5):
        for k, (m, p, body) in routes.items():
            best[k] = min(best[k], asyncio.run(per_request_us(app, m, p, body, a.n // 5)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; in-process "
          "ASGI calls (no HTTP parsing or sockets), best of 5 rounds")
    print("| route | µs per request |\n| --- | --- |")
    for k, v in best.items():
        print(f"| {k} | {v:.1f} |")
    keys = list(routes)
    print(f"body parameter + dependencies cost {best[keys[1]] - best[keys[2]]:.1f} µs more per request than the raw "
          f"body (x{best[keys[1]] / best[keys[2]]:.2f})")
    if (a.artifacts / "CURRENT").exists():
        before, after = gc_pause_ms(a.artifacts)
        print(f"full gc.collect() with bundle {(a.artifacts / 'CURRENT').read_text().strip()} loaded: "
              f"{before:.1f} ms; after gc.freeze(): {after:.2f} ms")


if __name__ == "__main__":
    main()
