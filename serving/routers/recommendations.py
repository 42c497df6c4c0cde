"""POST /v1/recommendations."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from serving.deps import Bundle, Settings
from serving.metrics import FALLBACKS, STAGES
from serving.recommend import RequestError, recommend
from serving.schemas import RecommendationRequest, RecommendationResponse

router = APIRouter(prefix="/v1", tags=["recommendations"])


def check_limits(req: RecommendationRequest, settings) -> None:
    if req.k > settings.max_k:
        raise HTTPException(422, f"k={req.k} is above the limit {settings.max_k}")
    if req.offset > settings.max_offset:
        raise HTTPException(422, f"offset={req.offset} is above the limit {settings.max_offset}")
    if len(req.recent_item_ids) > settings.max_history:
        raise HTTPException(422, f"{len(req.recent_item_ids)} recent_item_ids; the limit is {settings.max_history}")


@router.post("/recommendations", response_model=RecommendationResponse)
def recommendations(req: RecommendationRequest, bundle: Bundle, settings: Settings) -> RecommendationResponse:
    """Personalised items for a known shopper, an anonymous session (``recent_item_ids``) or nobody
    (popular items in scope), with filters, exclusions, pagination and a per-category cap."""
    check_limits(req, settings)
    try:
        out = recommend(bundle, req, settings.candidates)
    except RequestError as e:
        raise HTTPException(422, str(e)) from e
    t = out.timings
    for stage, ms in (("user", t.user_ms), ("retrieve", t.retrieve_ms), ("rank", t.rank_ms), ("rules", t.rules_ms)):
        STAGES.labels(stage).observe(ms / 1e3)
    if out.fallback:
        FALLBACKS.labels(out.fallback).inc()
    return out
