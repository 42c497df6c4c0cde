"""The service's state: the bundle being served (swapped whole on reload), what reload needs, the
merchandisers' rules and label decisions, and the micro-batcher that runs concurrent
recommendation requests as one model call."""

from __future__ import annotations

import threading

from fastapi import HTTPException

from bundle.log_erasure import erased_filter
from bundle.logs import Janitor, SegmentWriter, log_dir
from common.state_logs import open_state
from serving.analytics import ExposureCache
from serving.batcher import Batcher
from serving.event_intake import EventIntake
from serving.experiments import Experiment, Guard, Variant, VariantBundles, running_on
from serving.live import ChangeLog
from serving.loaded_bundle import LoadedBundle
from serving.merch_store import MerchStore
from serving.metrics import BATCH
from serving.realtime import RecentEvents, SharedEvents
from serving.recommend import NO_RULES, recommend_many
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
        self.variant_bundles = VariantBundles(load=None)  # experiments' bundles (serving/app.py sets the loader)
        self.online_cache: tuple[float, object] | None = None  # the Online page's report (serving/console.py)
        self.online_lock = threading.Lock()
        # the live state shared by every worker and replica: files on one host, or Redis (common/state_logs.py)
        self.state_logs = open_state(settings.state_url, settings.artifacts_dir)
        self.merch = MerchStore(settings.artifacts_dir, poll_s=settings.changes_poll_s or 1.0,
                                state=self.state_logs)  # rules, labels, experiments
        self.guard = Guard(self.merch.save_experiment)  # experiments' guardrails (serving/experiments.py)
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
        # across replicas (VITRINE_STATE_URL): accepted events fanned out through the shared store
        self.shared_events = SharedEvents(self.state_logs, self.realtime) if (
            self.realtime is not None and self.state_logs.remote) else None
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

    def changes(self, version: str) -> ChangeLog:
        """The admin change log of a bundle version, in the shared state store."""
        return ChangeLog(self.settings.artifacts_dir, version, self.state_logs)

    def require_bundle(self) -> LoadedBundle:
        """The bundle a request should use from start to end; 503 before the first one is loaded."""
        b = self.bundle
        if b is None:
            raise HTTPException(503, "no bundle loaded yet")
        return b

    def _recommend_batch(self, items: list[tuple]) -> list:
        """Requests grouped by the bundle they started on (two groups only across a reload) and, in
        an experiment, by what their variant changes on the path (serving/experiments.py)."""
        BATCH.observe(len(items))
        out: list = [None] * len(items)
        rules = self.merch.rules()
        groups: dict[tuple, list[int]] = {}
        for i, (b, _, v) in enumerate(items):
            groups.setdefault((id(b), v.path_key() if v is not None else None), []).append(i)
        live = self.realtime if self.settings.realtime else None
        for idx in groups.values():
            b, _, v = items[idx[0]]
            reqs = [items[i][1] for i in idx]
            candidates, group_rules = self.settings.candidates, rules
            if v is not None:
                candidates = v.candidates or candidates
                group_rules = rules if v.rules else NO_RULES
                if v.popularity:  # everyone gets the popular items in scope: no shopper, no session
                    reqs = [r.model_copy(update={"user_id": None, "session_id": None, "recent_item_ids": []})
                            for r in reqs]
            details: list = [None] * len(idx)
            answers = recommend_many(b, reqs, candidates, group_rules, live, details)
            for i, r, d in zip(idx, answers, details, strict=True):
                out[i] = r if isinstance(r, Exception) else (r, d)
        return out

    # ------------------------------------------------------------------ experiments

    def variant_bundle(self, v: Variant, live: LoadedBundle) -> LoadedBundle | None:
        """The bundle a variant serves from (None: not loaded yet, or refused)."""
        b = live if v.bundle is None or v.bundle == live.version else self.variant_bundles.get(v.bundle)
        if b is not None and not v.channels and b.channels is not None:
            b = self.variant_bundles.without_channels(b)
        return b

    def drop_unused_variants(self) -> None:
        """Free the bundles no running experiment names any more."""
        self.variant_bundles.keep_only({v.bundle for e in self.merch.experiments() if e.status == "running"
                                        for v in e.variants if v.bundle})

    def experiment_for(self, req: RecommendationRequest, live: LoadedBundle
                       ) -> tuple[Experiment, list[tuple[LoadedBundle, Variant]]] | None:
        """The running experiment on the request's placement and what this shopper is served: their
        variant (ab) or both variants (interleave). None: no experiment, no shopper or session key, or a
        variant's bundle not loaded yet in this worker (then the live page, untagged)."""
        exp = running_on(self.merch.experiments(), req.placement)
        key = req.user_id or req.session_id
        if exp is None or key is None:
            return None
        # every variant's bundle, not only this shopper's: until all serve, nobody is tagged (a half-
        # loaded experiment would tag one variant's shoppers only, a sample-ratio mismatch)
        held = {v.name: self.variant_bundle(v, live) for v in exp.variants}
        if any(b is None for b in held.values()):
            for v in exp.variants:
                if v.bundle in self.variant_bundles.failed:
                    self.guard.refused(exp, v, self.variant_bundles.failed[v.bundle])
            return None
        chosen = exp.variants if exp.mode == "interleave" else [exp.assign(key)]
        return exp, [(held[v.name], v) for v in chosen]
