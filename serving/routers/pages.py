"""HTML pages: the storefront demo at ``/`` and the merchandisers' console under ``/merch``.

Server-rendered (Jinja2, serving/templates/): each page calls the same functions as its JSON twin
under ``/v1/analytics`` / ``/v1/merch``, renders the tables, and embeds the chart data as JSON for
serving/static/merch.js to draw with plotly.js — served by this app (common/vendor/), so
the pages work with no network. The console's pages need the read role: a login (``/merch/login``)
exchanges a token for an HttpOnly cookie (serving/auth.py)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from common.assets import PLOTLY_JS
from serving import console
from serving.analytics import GALLERY, SHOPPERS, K
from serving.assets import TEMPLATES
from serving.auth import COOKIE, ROLES, role_of, session_cookie, token_role
from serving.deps import Bundle, Settings, State
from serving.rules import ACTIONS
from serving.schemas import PLACEMENTS

templates = Jinja2Templates(directory=TEMPLATES)
router = APIRouter(include_in_schema=False)

CONSOLE = [("tonight", "Tonight"), ("online", "Online"), ("experiments", "Experiments"),
           ("quality", "Quality over nights"), ("exposure", "Exposure"),
           ("photos", "Photos to check"), ("preview", "Preview as a shopper"), ("rules", "Rules"),
           ("map", "Catalog map")]


def _page(request: Request, name: str, **context) -> HTMLResponse:
    state = request.app.state.service
    b = state.bundle
    return templates.TemplateResponse(request, f"{name}.html", {
        "pages": CONSOLE, "page": name.removeprefix("merch_"), "plotly_js": PLOTLY_JS,
        "version": b.version if b else None, "categories": b.catalog.category_names if b else [],
        "actions": list(ACTIONS.values()), "placements": PLACEMENTS, "role": role_of(request)[0], **context})


def _local(path: str | None) -> str:
    """A console path to go back to after a login: this app's own pages only (never an open redirect)."""
    return path if path and path.startswith("/merch") and "//" not in path and "\\" not in path else "/merch"


async def console_page(request: Request) -> None:
    """The console's pages need the read role: without it, the login page (with the way back)."""
    if ROLES.index(role_of(request)[0]) < ROLES.index("read"):
        back = _local(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise HTTPException(303, "log in first", headers={"Location": f"/merch/login?next={quote(back, safe='')}"})


Console = Annotated[None, Depends(console_page)]


@router.get("/", response_class=HTMLResponse)
def storefront(request: Request, bundle: Bundle, settings: Settings) -> HTMLResponse:
    """Shop anonymously (or, with the demo's ``demo_shoppers`` switch, as a known shopper); click,
    filter, upload a photo. Shopper ids are personal data: not listed otherwise."""
    shoppers = bundle.shoppers.with_history(30) if settings.demo_shoppers else []
    return _page(request, "store", shoppers=shoppers, has_images=bundle.image_model is not None)


@router.get("/merch/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, "merch_login", back=_local(next), error=None)


@router.post("/merch/login", response_class=HTMLResponse)
def login(request: Request, settings: Settings, token: Annotated[str, Form(max_length=512)] = "",
          next: Annotated[str, Form(max_length=2000)] = "/merch") -> Response:
    """A read or admin token exchanged for an HttpOnly, SameSite=Strict cookie (serving/auth.py):
    page script never holds the token."""
    role = token_role(settings, token)
    if role == "public":
        return templates.TemplateResponse(request, "merch_login.html", {
            "pages": CONSOLE, "page": "login", "version": None, "back": _local(next), "role": "public",
            "error": "not a token this service knows"}, status_code=401)
    out = RedirectResponse(_local(next), status_code=303)
    out.set_cookie(COOKIE, session_cookie(settings, role), max_age=settings.session_ttl_s, httponly=True,
                   samesite="strict", secure=request.url.scheme == "https", path="/")
    return out


@router.post("/merch/logout")
def logout() -> RedirectResponse:
    out = RedirectResponse("/merch/login", status_code=303)
    out.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return out


@router.get("/merch", response_class=HTMLResponse)
def tonight(request: Request, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_tonight", t=console.tonight_report(state))


@router.get("/merch/online", response_class=HTMLResponse)
def online(request: Request, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_online", o=console.online_report(state))


@router.get("/merch/experiments", response_class=HTMLResponse)
def experiments(request: Request, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_experiments", x=console.experiments_report(state))


@router.get("/merch/quality", response_class=HTMLResponse)
def quality(request: Request, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_quality", q=console.quality_report(state))


@router.get("/merch/exposure", response_class=HTMLResponse)
def exposure(request: Request, bundle: Bundle, state: State, _: Console,
             shoppers_: Annotated[int, Query(alias="shoppers", ge=10, le=5000)] = SHOPPERS) -> HTMLResponse:
    return _page(request, "merch_exposure", e=console.exposure_report(bundle, state, shoppers_, K))


@router.get("/merch/photos", response_class=HTMLResponse)
def photos(request: Request, bundle: Bundle, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_photos", p=console.photo_checks(bundle, state, SHOPPERS, GALLERY),
                 has_images=bundle.image_model is not None)


@router.get("/merch/preview", response_class=HTMLResponse)
def preview(request: Request, bundle: Bundle, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_preview", shoppers=bundle.shoppers.with_history(50),
                 rules=state.merch.rules(fresh=True).rules)


@router.get("/merch/rules", response_class=HTMLResponse)
def rules(request: Request, bundle: Bundle, state: State, _: Console) -> HTMLResponse:
    return _page(request, "merch_rules", rules=state.merch.rules(fresh=True).rules,
                 shoppers=bundle.shoppers.with_history(50))


@router.get("/merch/map", response_class=HTMLResponse)
def catalog_map(request: Request, bundle: Bundle, _: Console) -> HTMLResponse:
    has = bundle.image_model is not None
    return _page(request, "merch_map", has_images=has,
                 points=console.catalog_map(bundle, 3000) if has else None,
                 confusion=console.confusion(bundle) if has else None)
