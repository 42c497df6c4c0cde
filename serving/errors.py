"""The service's own request error and the HTTP answers for everything that escapes a route.

Only :class:`RequestError` (raised by the project's code for a request it cannot answer as asked)
becomes a 4xx with its message. Any other exception is a bug on our side: a 500 that names a
request id, with the traceback logged under the same id, never a 422 that blames the client.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from common.state_logs import StateUnavailableError
from serving.parsing import short_input

log = logging.getLogger(__name__)
REQUEST_ID = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestError(Exception):
    """The request is well-formed but cannot be answered as asked: HTTP ``status`` with this message."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


def request_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a short safe token, else a fresh one."""
    given = request.headers.get(REQUEST_ID, "")
    return given if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex


def _allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first matching route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            exc.headers = (exc.headers or {}) | {"Allow": ", ".join(_allowed_methods(app, request.scope))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, each error's input shortened: an answer never echoes a whole large body."""
        errors = [e | {"input": short_input(e.get("input"))} if "input" in e else e for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail})

    @app.exception_handler(StateUnavailableError)
    async def _state_down(request: Request, exc: StateUnavailableError) -> JSONResponse:
        """The shared state store did not take a write: nothing changed; try again shortly."""
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"detail": "the shared state store is unreachable; nothing was changed, "
                                               "retry shortly"})

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error("request %s: %s %s failed", rid, request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, headers={REQUEST_ID: rid},
                            content={"detail": "internal server error; the log has the traceback under this id",
                                     "request_id": rid})
