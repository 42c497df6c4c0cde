"""POST /v1/recommendations."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from serving.deps import Bundle, Settings, State, check_k
from serving.metrics import FALLBACKS, STAGES
from serving.recommend import RequestError
from serving.schemas import ERRORS, RecommendationRequest, RecommendationResponse

router = APIRouter(prefix="/v1", tags=["recommendations"], responses=ERRORS)


def check_limits(req: RecommendationRequest, settings) -> None:
    check_k(req.k, settings)
    if req.offset > settings.max_offset:
        raise HTTPException(422, f"offset={req.offset} is above the limit {settings.max_offset}")
    if len(req.recent_item_ids) > settings.max_history:
        raise HTTPException(422, f"{len(req.recent_item_ids)} recent_item_ids; the limit is {settings.max_history}")


@router.post("/recommendations", response_model=RecommendationResponse)
async def recommendations(req: RecommendationRequest, bundle: Bundle, settings: Settings, state: State) -> Response:
    """Personalised items for a known shopper, an anonymous session (``recent_item_ids``) or nobody
    (popular items in scope), with filters, exclusions, pagination and a per-category cap.

    ``async`` on purpose: the work runs on the micro-batching thread (serving/batcher.py), never on
    the event loop; the request keeps the bundle it started with."""
    check_limits(req, settings)
    try:
        out = await state.batcher.submit((bundle, req))
    except RequestError as e:
        raise HTTPException(422, str(e)) from e
    t = out.timings
    for stage, ms in (("user", t.user_ms), ("retrieve", t.retrieve_ms), ("rank", t.rank_ms), ("rules", t.rules_ms)):
        STAGES.labels(stage).observe(ms / 1e3)
    if out.fallback:
        FALLBACKS.labels(out.fallback).inc()
    # Already a validated model: serialise it once here rather than have FastAPI re-validate it
    # against response_model (which stays on the route for the OpenAPI document).
    return Response(out.model_dump_json(), media_type="application/json")
