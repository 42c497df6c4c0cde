"""The service's state: the bundle being served (swapped whole on reload), what reload needs, the
merchandisers' rules and label decisions, and the micro-batcher that runs concurrent
recommendation requests as one model call."""

from __future__ import annotations

import threading

from fastapi import HTTPException

from bundle.log_erasure import erased_filter
from bundle.logs import Janitor, SegmentWriter, log_dir
from serving.analytics import ExposureCache
from serving.batcher import Batcher
from serving.event_intake import EventIntake
from serving.loaded_bundle import LoadedBundle
from serving.merch_store import MerchStore
from serving.metrics import BATCH
from serving.realtime import RecentEvents
from serving.recommend import recommend_many
from serving.schemas import RecommendationRequest
from serving.served_log import ServedLog
from serving.settings import ServingSettings


class ServiceState:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.bundle: LoadedBundle | None = None
        self.reload_lock = threading.Lock()
        self.last_error: str | None = None
        self.degraded: str | None = None  # serving an older bundle than CURRENT names, and why
        self.decodes = threading.BoundedSemaphore(settings.max_concurrent_decodes)  # serving/limits.py
        self.exposure_cache = ExposureCache()  # the console's exposure sample (serving/analytics.py)
        self.online_cache: tuple[float, object] | None = None  # the Online page's report (serving/console.py)
        self.online_lock = threading.Lock()
        self.merch = MerchStore(settings.artifacts_dir, poll_s=settings.changes_poll_s or 1.0)  # rules, labels
        self.batcher = Batcher(self._recommend_batch, max_batch=settings.max_batch,
                               max_wait_s=settings.batch_wait_ms / 1e3)
        # the closed loop (docs/online.md): the events log, the served-list log, this worker's real-time state
        self.events_root = log_dir(settings.artifacts_dir)
        self.event_writer = self.served_writer = None
        if settings.events:
            kw = {"max_bytes": settings.events_segment_bytes, "max_age_s": settings.events_segment_age_s,
                  "max_pending": settings.events_max_pending, "grace_s": settings.events_grace_s}
            self.event_writer = SegmentWriter(self.events_root, "events", **kw)
            self.served_writer = SegmentWriter(self.events_root, "served", **kw)
        self.realtime = RecentEvents(self.events_root, max_events=settings.realtime_events,
                                     max_shoppers=settings.realtime_shoppers,
                                     own=self.event_writer) if settings.events else None
        self.served = ServedLog(self.events_root, self.served_writer)
        self.intake = EventIntake(self.event_writer, self.served.tokens, self.realtime,
                                  max_future_s=settings.events_max_future_s, max_past_s=settings.events_max_past_s)
        self.janitor = Janitor(self.events_root, grace_s=settings.events_grace_s,
                               retention_days=settings.events_retention_days, store=settings.bundle_store,
                               erased=lambda: erased_filter(self.events_root))

    def close(self) -> None:
        """Write what the logs hold and close their segments (the janitor converts them)."""
        self.served.close()
        for w in (self.event_writer, self.served_writer):
            if w is not None:
                w.close()

    def require_bundle(self) -> LoadedBundle:
        """The bundle a request should use from start to end; 503 before the first one is loaded."""
        b = self.bundle
        if b is None:
            raise HTTPException(503, "no bundle loaded yet")
        return b

    def _recommend_batch(self, items: list[tuple[LoadedBundle, RecommendationRequest]]) -> list:
        """Requests grouped by the bundle they started on (two groups only across a reload)."""
        BATCH.observe(len(items))
        out: list = [None] * len(items)
        rules = self.merch.rules()
        groups: dict[int, list[int]] = {}
        for i, (b, _) in enumerate(items):
            groups.setdefault(id(b), []).append(i)
        live = self.realtime if self.settings.realtime else None
        for idx in groups.values():
            b = items[idx[0]][0]
            details: list = [None] * len(idx)
            answers = recommend_many(b, [items[i][1] for i in idx], self.settings.candidates, rules, live, details)
            for i, r, d in zip(idx, answers, details, strict=True):
                out[i] = r if isinstance(r, Exception) else (r, d)
        return out
