"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
import re
from dataclasses import asdict

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.auth import ROLES, check_role, role_of
from serving.schemas import Health

router = APIRouter(tags=["health"])
_PATH = re.compile(r"(?<![\w.])/[^\s:'\"`()]+")


def without_paths(text: str) -> str:
    """A reason with every local path cut out: the public sees what went wrong, not the host's layout."""
    return _PATH.sub("…", text)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (says nothing about the bundle). ``async``: answered on the event loop,
    never behind busy worker threads (a liveness probe that waits on them restarts a healthy pod)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, response: Response) -> Health:
    """A bundle is loaded and its smoke query passed at load time. ``degraded`` (still 200): the bundle
    CURRENT names was refused and an older one serves. The reason's local paths only for the read role
    (serving/auth.py); the public reads it with them cut out."""
    state = request.app.state.service
    reader = ROLES.index(role_of(request)[0]) >= ROLES.index("read")
    say = (lambda text: text) if reader else without_paths
    b = state.bundle
    if b is None:
        response.status_code = 503
        return Health(status=f"not ready: {say(state.last_error or 'loading')}", worker=os.getpid())
    why = [say(state.degraded)] if state.degraded else []
    if (down := state.state_logs.problem()) is not None:  # serving the last state it read (docs/scaling.md)
        why.append(down if reader else "shared state unreachable")  # where Redis is: the read role's
    status = f"degraded: {'; '.join(why)}" if why else "ready"
    return Health(status=status, bundle_version=b.version, items=b.items_index.n_live, worker=os.getpid(),
                  threads=asdict(request.app.state.pools))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text; with ``public_metrics`` off (the default), only for the read role."""
    if not request.app.state.service.settings.public_metrics:
        check_role(request, "read")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/ping", include_in_schema=False)
async def ping() -> dict:
    """A trivial JSON endpoint: the framework's ceiling in bench/serving_bench.py."""
    return {"pong": True}
