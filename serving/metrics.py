"""Prometheus metrics: request latency per endpoint, stage latency, fallbacks, bundle and index size."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram, Info

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

REQUESTS = Histogram("vitrine_request_seconds", "HTTP request latency", ["method", "route", "status"], buckets=BUCKETS)
STAGES = Histogram("vitrine_stage_seconds", "Recommendation stage latency", ["stage"], buckets=BUCKETS)
BATCH = Histogram("vitrine_batch_requests", "Recommendation requests answered per model batch",
                  buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64))
FALLBACKS = Counter("vitrine_fallback_total", "Answers not produced by the model path", ["fallback"])
BUNDLE = Info("vitrine_bundle", "The bundle being served")
INDEX_SIZE = Gauge("vitrine_index_items", "Live items in an index", ["index"])
RELOADS = Counter("vitrine_reload_total", "Bundle reload attempts", ["result"])


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): latency by route template and status."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            REQUESTS.labels(scope["method"], getattr(route, "path", "unmatched"), str(status["code"])).observe(
                time.perf_counter() - t0)
