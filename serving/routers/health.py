"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import State, require_admin
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive (says nothing about the bundle)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(state: State, response: Response) -> Health:
    """A bundle is loaded and its smoke query passed at load time. ``degraded: ...`` (still 200): the
    bundle CURRENT names was refused and an older one serves."""
    b = state.bundle
    if b is None:
        response.status_code = 503
        return Health(status=f"not ready: {state.last_error or 'loading'}", worker=os.getpid())
    status = f"degraded: {state.degraded}" if state.degraded else "ready"
    return Health(status=status, bundle_version=b.version, items=b.items_index.n_live, worker=os.getpid())


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text; with ``public_metrics`` off, only for the admin token's bearer."""
    if not request.app.state.service.settings.public_metrics:
        await require_admin(request, authorization)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/ping", include_in_schema=False)
async def ping() -> dict:
    """A trivial JSON endpoint: the framework's ceiling in bench/serving_bench.py."""
    return {"pong": True}
