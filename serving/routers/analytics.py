"""GET /v1/analytics/...: every number of the merchandisers' console as JSON (serving/analytics.py
computes them; the pages in serving/routers/pages.py draw them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from bundle.runs import nights, tonight
from serving import analytics as an
from serving.deps import Bundle, State
from serving.merch_schemas import (
    CatalogMap,
    Confusion,
    ExposureReport,
    Night,
    PhotoChecks,
    Quality,
    Tonight,
)
from serving.saliency import catalog_overlay
from serving.schemas import ERRORS
from vision.preprocess import ImageError

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=ERRORS)
Shoppers = Annotated[int, Query(ge=10, le=5000, description="Known shoppers sampled (seeded) for exposure.")]
K = Annotated[int, Query(ge=1, le=100, description="Items on each sampled home page.")]


def exposure_of(state, bundle, shoppers: int, k: int) -> an.Exposure:
    return state.exposure_cache.get(bundle, state.merch.rules(), shoppers, k, state.settings.candidates)


@router.get("/tonight", response_model=Tonight)
def get_tonight(state: State) -> Tonight:
    """The latest nightly run: published or refused, the gate's deciding metric, candidate against
    live for every headline metric; the live bundle and its size."""
    b, t = state.bundle, tonight(state.settings.artifacts_dir)
    return Tonight(live_version=b.version if b else None, items=b.n_items if b else 0,
                   shoppers=len(b.user_row) if b else 0, night=Night(**{k: t[k] for k in Night.model_fields}) if t
                   else None, deltas=t["deltas"] if t else [])


@router.get("/quality", response_model=Quality)
def get_quality(state: State) -> Quality:
    """Every model's headline metrics and the guard metrics, night by night (oldest first)."""
    return Quality(nights=nights(state.settings.artifacts_dir))


@router.get("/exposure", response_model=ExposureReport)
def get_exposure(bundle: Bundle, state: State, shoppers: Shoppers = an.SHOPPERS, k: K = an.K) -> ExposureReport:
    """What the service shows a sample of known shoppers on their home page, rules included."""
    e = exposure_of(state, bundle, shoppers, k)
    live = an.live_mask(bundle)
    name = lambda r, n: {"item_id": bundle.item_ids[r], "title": bundle.titles[r], "recommended": n}  # noqa: E731
    cats = [c | {"most": [name(r, n) for r, n in c["most"]], "never_sample": [name(r, 0) for r in c["never_sample"]]}
            for c in an.by_category(e.counts, bundle.category, live)]
    return ExposureReport(bundle_version=bundle.version, shoppers=e.requests, k=k,
                          coverage=an.coverage(e.counts, live), gini=an.gini(e.counts[live]),
                          fallback_share=e.fallback / max(e.requests, 1), long_tail=an.long_tail(e.counts, live),
                          categories=cats, seconds=round(e.seconds, 3))


@router.get("/photos", response_model=PhotoChecks)
def get_photos(bundle: Bundle, state: State, shoppers: Shoppers = an.SHOPPERS,
               limit: Annotated[int, Query(ge=1, le=500)] = 48) -> PhotoChecks:
    """Products whose photo the image model confidently puts in another category, not decided yet,
    the most recommended first."""
    e = exposure_of(state, bundle, shoppers, an.K)
    items = an.photos_to_check(bundle, e.counts, set(state.merch.decisions()))
    return PhotoChecks(bundle_version=bundle.version, total=len(items),
                       items=[i | {"saliency_url": f"/v1/analytics/photos/{i['item_id']}/saliency.png"}
                              for i in items[:limit]])


@router.get("/photos/{item_id}/saliency.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def get_saliency(item_id: str, bundle: Bundle) -> Response:
    """The product photo in grey with where the image model looked (for its predicted category) in red."""
    bundle.require_images()
    try:
        png = catalog_overlay(bundle, item_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from e
    except ImageError as e:
        raise HTTPException(422, f"item {item_id!r}: {e}") from e
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/catalog-map", response_model=CatalogMap)
def get_catalog_map(bundle: Bundle, n: Annotated[int, Query(ge=10, le=20000)] = 3000) -> CatalogMap:
    """A 2-D PCA projection of ``n`` random products' image embeddings."""
    bundle.require_images()
    return CatalogMap(**an.embedding_map(bundle, n))


@router.get("/confusion", response_model=Confusion)
def get_confusion(bundle: Bundle) -> Confusion:
    """The image model's prediction against the catalog's category over the live catalog's photos."""
    bundle.require_images()
    return Confusion(**an.confusion(bundle))
