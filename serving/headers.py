"""Security headers on every answer (pages, photos, JSON): a strict Content-Security-Policy (scripts
only from this origin, no inline script, no framing), no MIME sniffing, no referrer, and no caching
of the console's and the analytics' answers (they may carry personal data)."""

from __future__ import annotations

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
# plotly.js writes <style> elements (hence style-src 'unsafe-inline'); it needs no eval and no inline script.
COMMON = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
PRIVATE = ("/merch", "/v1/merch", "/v1/analytics")
# FastAPI's own documentation pages load their scripts from a CDN and inline: when they are enabled
# (``public_docs``, off by default) they keep the rest of the headers but not the policy.
NO_POLICY = ("/docs", "/redoc")


class SecurityHeaders:
    """ASGI middleware: adds the headers to every HTTP response start (a route's own values win)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        extra = list(COMMON)
        if not path.startswith(NO_POLICY):
            extra.append((b"content-security-policy", CSP.encode()))
        if path.startswith(PRIVATE):
            extra.append((b"cache-control", b"no-store"))

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [(k, v) for k, v in extra if k not in have]
            await send(message)

        await self.app(scope, receive, with_headers)
