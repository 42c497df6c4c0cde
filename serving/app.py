"""The FastAPI application: ``create_app()`` builds it; the bundle is loaded in ``lifespan``.

    uvicorn --factory serving.app:create_app        (or `vitrine serve --artifacts DIR`)
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from common.assets import VENDOR
from common.threads import apply, plan
from serving.assets import STATIC
from serving.errors import install_error_handlers
from serving.headers import SecurityHeaders
from serving.limits import BodyLimit
from serving.metrics import MetricsMiddleware
from serving.openapi import install_openapi
from serving.reload import fall_back, follow_changes, load_for_service, reload_current, watch_current
from serving.routers import (
    admin,
    analytics,
    events,
    experiments,
    health,
    images,
    items,
    merch,
    pages,
    recommendations,
)
from serving.settings import ServingSettings, get_settings
from serving.state import ServiceState

log = logging.getLogger(__name__)


def _every(stop: threading.Event, seconds: float, fn) -> None:
    """A background loop that outlives any one failure of ``fn``."""
    while not stop.wait(seconds):
        try:
            fn()
        except Exception:
            log.exception("%s failed", getattr(fn, "__qualname__", fn))


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # The batching thread releases the GIL inside every ONNX Runtime / FAISS / numpy call; with
    # Python's default 5 ms switch interval it then waits up to 5 ms for the event loop to hand it
    # back (a convoy). 0.2 ms keeps the hand-offs short (docs/benchmarks.md, "Online service").
    sys.setswitchinterval(settings.gil_switch_interval_s)
    pools = plan(settings.workers, ort=settings.ort_threads, faiss=settings.faiss_threads)
    settings = settings.model_copy(update={"ort_threads": pools.ort, "faiss_threads": pools.faiss})
    state = ServiceState(settings)
    state.variant_bundles.load = lambda version: load_for_service(state, version)  # experiments' bundles

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # OpenMP's thread count is per calling thread: size the pools here, on the event-loop thread that
        # runs the recommendation batches (the bundle itself loads on a worker thread).
        apply(pools)
        ok, detail = await run_in_threadpool(reload_current, state)
        if not ok:  # CURRENT refused: the newest older bundle that loads, labelled degraded in /readyz
            ok, detail = await run_in_threadpool(fall_back, state)
        if not ok:  # keep running: /readyz says why, /admin/reload or a new CURRENT can fix it
            log.error("started without a bundle: %s", detail)
        stop = threading.Event()
        if settings.events:  # the closed loop: a restarted worker knows what it acknowledged; logs kept tidy
            await run_in_threadpool(state.janitor.run_once)
            await run_in_threadpool(state.intake.remember, state.events_root)
            threading.Thread(target=_every, args=(stop, max(1.0, settings.events_grace_s), state.janitor.run_once),
                             daemon=True, name="log-janitor").start()
            if state.realtime is not None and settings.realtime:
                threading.Thread(target=_every, args=(stop, settings.realtime_poll_s, state.realtime.tail),
                                 daemon=True, name="realtime-tail").start()
            if state.shared_events is not None:
                threading.Thread(target=_every, args=(stop, settings.realtime_poll_s, state.shared_events.follow),
                                 daemon=True, name="shared-events").start()
        watcher = None
        if settings.watch_interval_s > 0:
            watcher = threading.Thread(target=watch_current, args=(state, stop), daemon=True, name="watch-current")
            watcher.start()
        threading.Thread(target=_every, args=(stop, 5.0, state.drop_unused_variants), daemon=True,
                         name="experiment-bundles").start()
        if settings.changes_poll_s > 0:
            threading.Thread(target=follow_changes, args=(state, stop), daemon=True, name="follow-changes").start()
        yield
        stop.set()
        await run_in_threadpool(state.close)

    docs = {} if settings.public_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="Vitrine", version="1", lifespan=lifespan, **docs,
                  description="Recommendations, similar items and search by photo over a versioned model bundle.")
    app.state.service = state
    app.state.pools = pools
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, settings=settings)  # outermost of ours: nothing reads a body past its limit
    for r in (recommendations.router, items.router, images.router, events.router, admin.router, health.router,
              analytics.router, merch.router, experiments.router, pages.router):
        app.include_router(r)
    app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")  # plotly.js (common/assets.py)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")  # the pages' CSS and JavaScript
    install_error_handlers(app)
    install_openapi(app, settings)
    return app
