"""Request parsing and limits that routes call directly (not dependencies)."""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from serving.schemas import Filters, RecommendationRequest
from serving.settings import ServingSettings

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
        raise RequestValidationError([_body_error(err) for err in e.errors(include_url=False)]) from None


ECHO = 200  # characters of a refused input an error answer repeats, at most


def short_input(value):
    """What an error answer may repeat of a refused input: itself when short, else a prefix (a 5 MB
    body that is not JSON must not come back as a 5 MB answer)."""
    if isinstance(value, bytes):
        value = value[: 4 * ECHO].decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= ECHO else value[:ECHO] + f"... ({len(value):,} characters)"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = repr(value)
    return value if len(text) <= ECHO else text[:ECHO] + "..."


def _body_error(err: dict) -> dict:
    """A pydantic error located in the body, its input shortened (``short_input``) and as text."""
    return err | {"loc": ("body", *err["loc"]), "input": short_input(err.get("input"))}


def check_k(k: int, settings: ServingSettings) -> None:
    """The limit every listing endpoint shares: a 422 naming it, never a slow oversized answer."""
    if k > settings.max_k:
        raise HTTPException(422, f"k={k} is above the limit {settings.max_k}")


def query_filters(**values) -> Filters:
    """Filters from query parameters, checked like a body's (a 422 with the reason, never a 500)."""
    try:
        return Filters(**values)
    except ValidationError as e:
        raise RequestValidationError([_query_error(err) for err in e.errors(include_url=False)]) from None


def _query_error(err: dict) -> dict:
    return {k: v for k, v in err.items() if k != "input" and k != "ctx"} | {"loc": ("query", *err["loc"])}


def check_limits(req: RecommendationRequest, settings: ServingSettings) -> None:
    """A recommendation request's limits beyond its schema (they are settings): k, offset, history."""
    check_k(req.k, settings)
    if req.offset > settings.max_offset:
        raise HTTPException(422, f"offset={req.offset} is above the limit {settings.max_offset}")
    if len(req.recent_item_ids) > settings.max_history:
        raise HTTPException(422, f"{len(req.recent_item_ids)} recent_item_ids; the limit is {settings.max_history}")
