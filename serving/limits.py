"""Bounds on what one request may cost before any route code runs: body size (a 413 before the body
is read or spooled, whatever route or credentials it targets) and concurrent image decodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastapi import HTTPException

from serving.settings import ServingSettings

if TYPE_CHECKING:
    from serving.state import ServiceState

MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers beside the photo
# The routes that take a photo: the upload limit. Every other route takes ``max_body_bytes``, whatever
# Content-Type the request claims (a client chooses its headers, the server its limits).
UPLOAD_ROUTES = {("POST", "/v1/items"), ("POST", "/v1/images/classify"), ("POST", "/v1/images/search")}


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over its limit is answered 413 — at once when ``Content-Length`` says so,
    else as soon as the streamed bytes pass it. The routes of ``UPLOAD_ROUTES`` may carry an upload of
    ``max_upload_bytes``; every other body ``max_body_bytes``."""

    def __init__(self, app, settings: ServingSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        upload = (scope["method"], scope["path"].rstrip("/")) in UPLOAD_ROUTES
        limit = self.settings.max_upload_bytes + MULTIPART_OVERHEAD if upload else self.settings.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await _refuse(send, limit)
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLargeError
            return message

        async def tracked(message) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLargeError:
            if not started:
                await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body is larger than the limit of {limit:,} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def decode_slot(state: ServiceState) -> Iterator[None]:
    """At most ``max_concurrent_decodes`` photos decoded at once per service (``state.decodes``); a
    request that waits longer than ``decode_wait_s`` for a slot is answered 503 (retry), not queued
    without bound."""
    if not state.decodes.acquire(timeout=state.settings.decode_wait_s):
        raise HTTPException(503, "busy decoding other images; retry shortly", headers={"Retry-After": "1"})
    try:
        yield
    finally:
        state.decodes.release()
