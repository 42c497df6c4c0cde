"""HTML pages: the storefront demo at ``/`` and the merchandisers' console under ``/merch``.

Server-rendered (Jinja2, serving/templates/): each page calls the same functions as its JSON twin
under ``/v1/analytics`` / ``/v1/merch``, renders the tables, and embeds the chart data as JSON for
serving/static/merch.js to draw with plotly.js — served by this app (common/vendor/), so
the pages work with no network."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from common.assets import PLOTLY_JS
from serving import console
from serving.analytics import GALLERY, SHOPPERS, K
from serving.assets import TEMPLATES
from serving.deps import Bundle, State
from serving.rules import ACTIONS

templates = Jinja2Templates(directory=TEMPLATES)
router = APIRouter(include_in_schema=False)

CONSOLE = [("tonight", "Tonight"), ("quality", "Quality over nights"), ("exposure", "Exposure"),
           ("photos", "Photos to check"), ("preview", "Preview as a shopper"), ("rules", "Rules"),
           ("map", "Catalog map")]


def _page(request: Request, name: str, **context) -> HTMLResponse:
    state = request.app.state.service
    b = state.bundle
    return templates.TemplateResponse(request, f"{name}.html", {
        "pages": CONSOLE, "page": name.removeprefix("merch_"), "plotly_js": PLOTLY_JS,
        "version": b.version if b else None, "categories": b.catalog.category_names if b else [],
        "actions": list(ACTIONS.values()), **context})


@router.get("/", response_class=HTMLResponse)
def storefront(request: Request, bundle: Bundle) -> HTMLResponse:
    """Pick a shopper or shop anonymously; click, filter, upload a photo."""
    return _page(request, "store", shoppers=bundle.shoppers.with_history(30), has_images=bundle.image_model is not None)


@router.get("/merch", response_class=HTMLResponse)
def tonight(request: Request, state: State) -> HTMLResponse:
    return _page(request, "merch_tonight", t=console.tonight_report(state))


@router.get("/merch/quality", response_class=HTMLResponse)
def quality(request: Request, state: State) -> HTMLResponse:
    return _page(request, "merch_quality", q=console.quality_report(state))


@router.get("/merch/exposure", response_class=HTMLResponse)
def exposure(request: Request, bundle: Bundle, state: State,
             shoppers_: Annotated[int, Query(alias="shoppers", ge=10, le=5000)] = SHOPPERS) -> HTMLResponse:
    return _page(request, "merch_exposure", e=console.exposure_report(bundle, state, shoppers_, K))


@router.get("/merch/photos", response_class=HTMLResponse)
def photos(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_photos", p=console.photo_checks(bundle, state, SHOPPERS, GALLERY),
                 has_images=bundle.image_model is not None)


@router.get("/merch/preview", response_class=HTMLResponse)
def preview(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_preview", shoppers=bundle.shoppers.with_history(50),
                 rules=state.merch.rules(fresh=True).rules)


@router.get("/merch/rules", response_class=HTMLResponse)
def rules(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_rules", rules=state.merch.rules(fresh=True).rules,
                 shoppers=bundle.shoppers.with_history(50))


@router.get("/merch/map", response_class=HTMLResponse)
def catalog_map(request: Request, bundle: Bundle) -> HTMLResponse:
    has = bundle.image_model is not None
    return _page(request, "merch_map", has_images=has,
                 points=console.catalog_map(bundle, 3000) if has else None,
                 confusion=console.confusion(bundle) if has else None)
