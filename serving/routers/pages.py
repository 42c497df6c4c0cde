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
from serving.analytics import GALLERY, SHOPPERS, K
from serving.assets import TEMPLATES
from serving.deps import Bundle, State
from serving.routers import analytics as an_routes
from serving.routers.merch import list_rules, shoppers

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
        "version": b.version if b else None, "categories": b.category_names if b else [], **context})


@router.get("/", response_class=HTMLResponse)
def storefront(request: Request, bundle: Bundle) -> HTMLResponse:
    """Pick a shopper or shop anonymously; click, filter, upload a photo."""
    return _page(request, "store", shoppers=shoppers(bundle, 30).user_ids, has_images=bundle.image_model is not None)


@router.get("/merch", response_class=HTMLResponse)
def tonight(request: Request, state: State) -> HTMLResponse:
    return _page(request, "merch_tonight", t=an_routes.get_tonight(state))


@router.get("/merch/quality", response_class=HTMLResponse)
def quality(request: Request, state: State) -> HTMLResponse:
    return _page(request, "merch_quality", q=an_routes.get_quality(state))


@router.get("/merch/exposure", response_class=HTMLResponse)
def exposure(request: Request, bundle: Bundle, state: State,
             shoppers_: Annotated[int, Query(alias="shoppers", ge=10, le=5000)] = SHOPPERS) -> HTMLResponse:
    return _page(request, "merch_exposure", e=an_routes.get_exposure(bundle, state, shoppers_, K))


@router.get("/merch/photos", response_class=HTMLResponse)
def photos(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_photos", p=an_routes.get_photos(bundle, state, SHOPPERS, GALLERY),
                 has_images=bundle.image_model is not None)


@router.get("/merch/preview", response_class=HTMLResponse)
def preview(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_preview", shoppers=shoppers(bundle, 50).user_ids,
                 rules=list_rules(state).rules)


@router.get("/merch/rules", response_class=HTMLResponse)
def rules(request: Request, bundle: Bundle, state: State) -> HTMLResponse:
    return _page(request, "merch_rules", rules=list_rules(state).rules, shoppers=shoppers(bundle, 50).user_ids)


@router.get("/merch/map", response_class=HTMLResponse)
def catalog_map(request: Request, bundle: Bundle) -> HTMLResponse:
    has = bundle.image_model is not None
    return _page(request, "merch_map", has_images=has,
                 points=an_routes.get_catalog_map(bundle, 3000) if has else None,
                 confusion=an_routes.get_confusion(bundle) if has else None)
