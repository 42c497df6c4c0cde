"""POST /v1/recommendations."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import to_json

from serving.auth import check_role
from serving.metrics import FALLBACKS, STAGES
from serving.parsing import check_limits, json_body, json_body_schema
from serving.schemas import ERRORS, RecommendationRequest, RecommendationResponse
from serving.state import ServiceState

_STAGES = [STAGES.labels(s) for s in ("user", "retrieve", "rank", "rules")]  # labelled once, not per request
router = APIRouter(prefix="/v1", tags=["recommendations"], responses=ERRORS)


@router.post("/recommendations", response_model=RecommendationResponse,
             openapi_extra=json_body_schema(RecommendationRequest))
async def recommendations(request: Request) -> Response:
    """Personalised items for a known shopper, an anonymous session (``recent_item_ids``) or nobody
    (popular items in scope), with filters, exclusions, pagination and a per-category cap.

    The storefront calls this on every page view, so it skips FastAPI's per-request machinery: no
    body parameter or dependencies (the body is validated by pydantic-core in one call, the state
    read directly) and the response serialised once, not re-validated against ``response_model``
    (which stays for the OpenAPI document). ``async`` on purpose: the work runs in a micro-batch
    (serving/batcher.py); the request keeps the bundle it started with."""
    state: ServiceState = request.app.state.service
    bundle = state.require_bundle()
    with state.batcher.arrival():
        req = await json_body(request, RecommendationRequest)
        check_limits(req, state.settings)
        if req.explain and req.user_id is not None:  # the reasons name items of the shopper's history
            check_role(request, "read")
        out, detail = await state.batcher.submit((bundle, req))  # a RequestError -> its 4xx (serving/errors.py)
    t = out["timings"]
    for stage, ms in zip(_STAGES, (t["user_ms"], t["retrieve_ms"], t["rank_ms"], t["rules_ms"]), strict=True):
        stage.observe(ms / 1e3)
    if out["fallback"]:
        FALLBACKS.labels(out["fallback"]).inc()
    out["rec_id"] = state.served.served("recommendations", req.placement, req.user_id, req.session_id,
                                        out["bundle_version"], out["items"], detail)  # queued, never waited on
    return Response(to_json(out), media_type="application/json")
