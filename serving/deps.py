"""Shared request dependencies (``Annotated`` aliases), the service state they read, and auth."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from serving.batcher import Batcher
from serving.metrics import BATCH
from serving.recommend import recommend_many
from serving.runtime import LoadedBundle
from serving.schemas import RecommendationRequest
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class ServiceState:
    """The bundle being served (swapped whole on reload) and what reload needs."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.bundle: LoadedBundle | None = None
        self.reload_lock = threading.Lock()
        self.last_error: str | None = None
        self.batcher = Batcher(self._recommend_batch, max_batch=settings.max_batch,
                               max_wait_s=settings.batch_wait_ms / 1e3)

    def _recommend_batch(self, items: list[tuple[LoadedBundle, RecommendationRequest]]) -> list:
        """Requests grouped by the bundle they started on (two groups only across a reload)."""
        BATCH.observe(len(items))
        out: list = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (b, _) in enumerate(items):
            groups.setdefault(id(b), []).append(i)
        for idx in groups.values():
            b = items[idx[0]][0]
            for i, r in zip(idx, recommend_many(b, [items[i][1] for i in idx], self.settings.candidates), strict=True):
                out[i] = r
        return out


# Dependencies are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency
# in the thread pool, and three thread hops per request cost more than the whole ranker.


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_bundle(request: Request) -> LoadedBundle:
    b = request.app.state.service.bundle
    if b is None:
        raise HTTPException(503, "no bundle loaded yet")
    return b


async def get_settings_dep(request: Request) -> ServingSettings:
    return request.app.state.service.settings


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.service.settings.admin_token
    if not token:
        raise HTTPException(403, "admin endpoints are disabled: no VITRINE_ADMIN_TOKEN is configured")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "admin endpoints need 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


M = TypeVar("M", bound=BaseModel)


def json_body_schema(model: type[BaseModel]) -> dict:
    """``openapi_extra`` documenting a request body that the route parses itself (:func:`json_body`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def json_body(request: Request, model: type[M]) -> M:
    """The request body parsed and validated by pydantic-core in one call, errors reported as
    FastAPI reports body errors (422, ``loc`` starting with "body"). For the hottest route: a
    FastAPI body parameter plus three dependencies add 60 % to the cost of a trivial route
    (bench/route_bench.py, docs/benchmarks.md "Online service")."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as e:
        raise RequestValidationError([err | {"loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
                                     ) from None


def check_k(k: int, settings: ServingSettings) -> None:
    """The limit every listing endpoint shares: a 422 naming it, never a slow oversized answer."""
    if k > settings.max_k:
        raise HTTPException(422, f"k={k} is above the limit {settings.max_k}")


State = Annotated[ServiceState, Depends(get_state)]
Bundle = Annotated[LoadedBundle, Depends(get_bundle)]
Settings = Annotated[ServingSettings, Depends(get_settings_dep)]
Admin = Annotated[None, Depends(require_admin)]
