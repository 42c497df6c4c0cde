"""Who may do what (docs/security.md). Three roles:

    public  the storefront's routes: recommendations (explanations only for anonymous sessions),
            similar items, search by photo, product photos, health
    read    the console's pages and analytics, and personal data: shopper lists and histories,
            previews as a shopper, explanations for a known shopper (they name history items),
            /metrics and the full /readyz reason
    admin   writes (the catalog, rules, label decisions, reload) and everything read may

A request proves its role with ``Authorization: Bearer <token>`` (``admin_token`` / ``read_token``)
or, in the console, with the HttpOnly cookie a login set: ``role.expiry.signature``, an HMAC-SHA256
under a key derived from the configured tokens, so every worker checks it alike, rotating a token
ends every session, and page script never holds a token. A cookie-authenticated request that
changes state must also carry ``X-Vitrine-Console: 1``, which a page on another site cannot add
(cross-site request forgery); the cookie is ``SameSite=Strict`` as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.settings import ServingSettings

ROLES = ("public", "read", "admin")  # each may what the ones before it may
COOKIE = "vitrine_console"
CONSOLE_HEADER = "X-Vitrine-Console"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _key(settings: ServingSettings) -> bytes | None:
    tokens = [t for t in (settings.admin_token, settings.read_token) if t]
    if not tokens:
        return None
    return hashlib.sha256(b"vitrine-console\0" + "\0".join(tokens).encode()).digest()


def token_role(settings: ServingSettings, token: str | None) -> str:
    """The role a bearer token grants ("public" for none or an unknown one), in constant time."""
    if not token:
        return "public"
    given = token.encode()
    admin = settings.admin_token is not None and secrets.compare_digest(given, settings.admin_token.encode())
    read = settings.read_token is not None and secrets.compare_digest(given, settings.read_token.encode())
    return "admin" if admin else "read" if read else "public"


def session_cookie(settings: ServingSettings, role: str, now: float | None = None) -> str:
    """The console login cookie's value for ``role``, valid ``session_ttl_s``."""
    key = _key(settings)
    if key is None or role not in ("read", "admin"):
        raise ValueError("no session without a configured token and a read or admin role")
    body = f"{role}.{int((now or time.time()) + settings.session_ttl_s)}"
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"


def cookie_role(settings: ServingSettings, value: str | None, now: float | None = None) -> str:
    """The role a console cookie grants ("public": none, forged, altered or expired)."""
    key = _key(settings)
    if not value or key is None or value.count(".") != 2:
        return "public"
    role, expiry, sig = value.split(".")
    want = hmac.new(key, f"{role}.{expiry}".encode(), hashlib.sha256).hexdigest()
    if not secrets.compare_digest(sig.encode(), want.encode()) or role not in ("read", "admin"):
        return "public"
    return role if expiry.isdigit() and int(expiry) > (now or time.time()) else "public"


def bearer(authorization: str | None) -> str | None:
    scheme, _, given = (authorization or "").partition(" ")
    return given if scheme.lower() == "bearer" and given else None


def role_of(request: Request) -> tuple[str, str]:
    """(role, how): how is "bearer", "cookie" or "none"."""
    settings: ServingSettings = request.app.state.service.settings
    token = bearer(request.headers.get("authorization"))
    if token is not None:
        return token_role(settings, token), "bearer"
    value = request.cookies.get(COOKIE)
    if value:
        return cookie_role(settings, value), "cookie"
    return "public", "none"


def check_role(request: Request, need: str) -> str:
    """The request's role when it is at least ``need``; else the HTTP error that says what is missing."""
    settings: ServingSettings = request.app.state.service.settings
    if settings.admin_token is None and (need == "admin" or settings.read_token is None):
        names = "VITRINE_ADMIN_TOKEN" if need == "admin" else "VITRINE_READ_TOKEN or VITRINE_ADMIN_TOKEN"
        raise HTTPException(403, f"{'admin' if need == 'admin' else 'read'} endpoints are disabled: no {names} "
                                 "is configured")
    role, how = role_of(request)
    if ROLES.index(role) < ROLES.index(need):
        if role == "public":
            raise HTTPException(401, f"this needs the {need} role: 'Authorization: Bearer <token>' or a console "
                                     "login", headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, f"this needs the {need} role; this session has the {role} role")
    if how == "cookie" and request.method not in SAFE_METHODS and request.headers.get(CONSOLE_HEADER) != "1":
        raise HTTPException(403, f"a console session's writes carry the {CONSOLE_HEADER}: 1 header")
    return role


# Declared as a security scheme, so the OpenAPI document says which operations need a token; the
# check itself is ``check_role`` (a console cookie is accepted too).
_bearer = HTTPBearer(auto_error=False, scheme_name="token",
                     description="A read or admin token (docs/security.md); the console sends a session cookie.")


async def require_read(request: Request,
                       _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> str:
    """The read role or more."""
    return check_role(request, "read")


async def require_admin(request: Request,
                        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> str:
    """The admin role."""
    return check_role(request, "admin")
