"""GET /v1/analytics/...: every number of the merchandisers' console as JSON (serving/console.py
builds them; the pages in serving/routers/pages.py draw the same)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from serving import analytics as an
from serving import console
from serving.auth import require_read
from serving.deps import Bundle, State
from serving.limits import decode_slot
from serving.merch_schemas import (
    CatalogMap,
    Confusion,
    ExposureReport,
    OnlineReport,
    PhotoChecks,
    Quality,
    Tonight,
)
from serving.off_policy import CANDIDATES, OffPolicyEstimate, estimate, logged_lists
from serving.saliency import catalog_overlay
from serving.schemas import ERRORS
from vision.preprocess import ImageError

# the read role (serving/auth.py): a bearer token or a console login
router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=ERRORS, dependencies=[Depends(require_read)])
Shoppers = Annotated[int, Query(ge=10, le=5000, description="Known shoppers sampled (seeded) for exposure.")]
K = Annotated[int, Query(ge=1, le=100, description="Items on each sampled home page.")]


@router.get("/tonight", response_model=Tonight)
def get_tonight(state: State) -> Tonight:
    """The latest nightly run: published or refused, the gate's deciding metric, candidate against
    live for every headline metric; the live bundle and its size."""
    return console.tonight_report(state)


@router.get("/quality", response_model=Quality)
def get_quality(state: State) -> Quality:
    """Every model's headline metrics and the guard metrics, night by night (oldest first)."""
    return console.quality_report(state)


@router.get("/online", response_model=OnlineReport)
def get_online(state: State) -> OnlineReport:
    """What the served lists earned: impressions, clicks, carts, purchases, attributed revenue and
    the rates, per day × placement, channel, rule and bundle version × variant; the position-CTR
    curve (docs/online.md). Recomputed at most once a minute."""
    return console.online_report(state)


@router.get("/off-policy", response_model=OffPolicyEstimate)
def off_policy(state: State, candidate: Annotated[Literal[CANDIDATES], Query(description="The ordering of the "
               "service's own top positions to estimate: logged (by its score), reversed, random.")] = "reversed",
               placement: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
               positions: Annotated[int | None, Query(ge=2, le=100, description="Top positions (default: the "
                                                      "explore_positions setting).")] = None) -> OffPolicyEstimate:
    """A candidate ordering's CTR over the top positions, estimated from the explored lists' logged
    propensities (IPS and self-normalised IPS, serving/off_policy.py) before it serves anyone. 409:
    exploration is off (``explore_rate`` 0) and nothing explored was logged."""
    m = positions or state.settings.explore_positions
    est = estimate(logged_lists(state.events_root, placement), candidate, m, placement=placement)
    if est.lists == 0:
        raise HTTPException(409, "no explored list logged: set VITRINE_EXPLORE_RATE (docs/experiments.md)")
    return est


@router.get("/exposure", response_model=ExposureReport)
def get_exposure(bundle: Bundle, state: State, shoppers: Shoppers = an.SHOPPERS, k: K = an.K) -> ExposureReport:
    """What this bundle really served (the served log), or before it served anything logged, the home
    pages of a seeded sample of known shoppers (``shoppers``, ``k``), rules included."""
    return console.exposure_report(bundle, state, shoppers, k)


@router.get("/photos", response_model=PhotoChecks)
def get_photos(bundle: Bundle, state: State, shoppers: Shoppers = an.SHOPPERS,
               limit: Annotated[int, Query(ge=1, le=500)] = 48) -> PhotoChecks:
    """Products whose photo the image model confidently puts in another category, not decided yet,
    the most recommended first."""
    return console.photo_checks(bundle, state, shoppers, limit)


@router.get("/photos/{item_id}/saliency.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def get_saliency(item_id: str, bundle: Bundle, state: State) -> Response:
    """The product photo in grey with where the image model looked (for its predicted category) in red."""
    bundle.require_images()
    try:
        with decode_slot(state):  # a decode and ~50 model calls: bounded like every photo decode
            png = catalog_overlay(bundle, item_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from e
    except ImageError as e:
        raise HTTPException(422, f"item {item_id!r}: {e}") from e
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/catalog-map", response_model=CatalogMap)
def get_catalog_map(bundle: Bundle, n: Annotated[int, Query(ge=10, le=20000)] = 3000) -> CatalogMap:
    """A 2-D PCA projection of ``n`` random products' image embeddings."""
    return console.catalog_map(bundle, n)


@router.get("/confusion", response_model=Confusion)
def get_confusion(bundle: Bundle) -> Confusion:
    """The image model's prediction against the catalog's category over the live catalog's photos."""
    return console.confusion(bundle)
