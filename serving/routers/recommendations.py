"""POST /v1/recommendations."""

from __future__ import annotations

import asyncio
import random
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import to_json

from serving.auth import check_role
from serving.errors import RequestError
from serving.interleave import team_draft
from serving.metrics import FALLBACKS, STAGES
from serving.off_policy import explore
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
        picked = state.experiment_for(req, bundle)  # serving/experiments.py
        teams, tag = None, None
        if picked is None:
            out, detail = await state.batcher.submit((bundle, req, None))  # a RequestError -> its 4xx
        elif len(picked[1]) == 1:  # A/B: this shopper's variant, its guardrails counted
            exp, [(b, v)] = picked
            t0 = time.perf_counter()
            try:
                out, detail = await state.batcher.submit((b, req, v))
            except RequestError:
                raise
            except Exception:
                state.guard.record(exp, v, (time.perf_counter() - t0) * 1e3, error=True)
                raise
            state.guard.record(exp, v, (time.perf_counter() - t0) * 1e3, error=False)
            tag = exp.tag(v)
        else:  # interleaving: both variants' pages, merged by team draft; no per-item details
            exp, arms = picked
            (out, _), (other, _) = await asyncio.gather(*(state.batcher.submit((b, req, v)) for b, v in arms))
            out["items"], sides = team_draft(out["items"], other["items"], req.k, random.Random())
            teams = [arms[0 if t == "A" else 1][1].name for t in sides]  # the variant that placed each item
            detail, tag = None, exp.tag(None)
    t = out["timings"]
    for stage, ms in zip(_STAGES, (t["user_ms"], t["retrieve_ms"], t["rank_ms"], t["rules_ms"]), strict=True):
        stage.observe(ms / 1e3)
    if out["fallback"]:
        FALLBACKS.labels(out["fallback"]).inc()
    out["variant"] = tag
    s, props, order = state.settings, None, None
    if s.explore_rate > 0 and teams is None and req.offset == 0 and (
            not s.explore_placements or req.placement in s.explore_placements):  # off-policy logging
        out["items"], props, order = explore(out["items"], s.explore_rate, s.explore_positions, random.Random())
    out["rec_id"] = state.served.served("recommendations", req.placement, req.user_id, req.session_id,
                                        out["bundle_version"], out["items"], detail, tag, teams, props, order)
    return Response(to_json(out), media_type="application/json")
