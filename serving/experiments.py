"""Online experiments between bundles and serving settings (docs/experiments.md).

An experiment names its placements, its variants (the first is the control), each variant's traffic
share and what it serves: a bundle version held beside the live one, and/or an override of the live
path (popular items only, recall channels off, another union size, rules off). A shopper — their
user id, else their session — is assigned by a hash of the experiment's salt and that key: the same
shopper always sees the same variant, and a new salt re-draws everyone. ``ab`` serves each shopper
their variant's page; ``interleave`` merges two variants' pages into one by team draft
(serving/interleave.py) and credits each click to the variant that placed the item.

The assignment is logged with every served list (``variant`` = ``<experiment>:<variant>``, or
``<experiment>:interleave``), so the online metrics (serving/online.py) and the analysis
(serving/experiment_stats.py) read it from the served log like any other dimension.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bundle.versions import VERSION

log = logging.getLogger(__name__)
NAME = r"^[A-Za-z0-9_.-]{1,64}$"
PLACEMENT = r"^[A-Za-z0-9_.-]{1,64}$"


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    share: float = Field(gt=0, le=1, description="Share of the experiment's shoppers (the shares sum to 1).")
    bundle: str | None = Field(None, pattern=f"^{VERSION.pattern}$", description="A published bundle version held "
                               "beside the live one; null: the live bundle.")
    popularity: bool = Field(False, description="Serve the popular items in scope to everyone (no personalisation).")
    channels: bool = Field(True, description="False: the two-tower's list only, no item-to-item or category channels.")
    candidates: int | None = Field(None, ge=10, le=2000, description="The candidate union's size (null: the setting).")
    rules: bool = Field(True, description="False: the merchandising rules are not applied.")

    def path_key(self) -> tuple:
        """What changes the serving path (requests with the same key are batched together)."""
        return (self.popularity, self.channels, self.candidates, self.rules)


class Guardrails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_error_rate: float = Field(0.01, ge=0, le=1, description="A variant answering more of its requests with an "
                                  "error than this is stopped.")
    max_p99_ms: float | None = Field(None, gt=0, description="... or slower than this at the 99th percentile.")
    min_ctr_ratio: float | None = Field(0.7, gt=0, le=1, description="... or with a CTR below this share of the "
                                        "control's, once both have min_impressions.")
    min_impressions: int = Field(2000, ge=1)
    min_requests: int = Field(200, ge=1, description="Requests a variant needs before its error rate and p99 count.")


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment_id: str | None = Field(None, pattern=NAME, description="Assigned when omitted.")
    name: str = Field(min_length=1, max_length=200)
    placements: list[str] = Field(min_length=1, max_length=20, description="Requests with one of these "
                                  "placements take part.")
    mode: Literal["ab", "interleave"] = "ab"
    variants: list[Variant] = Field(min_length=2, max_length=4, description="The first is the control.")
    salt: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,64}$", description="Assignment salt (assigned when "
                             "omitted; a new salt re-draws every shopper).")
    start: datetime | None = None
    end: datetime | None = None
    primary_metric: Literal["ctr", "conversion", "revenue_per_visitor"] = "ctr"
    non_inferiority: float = Field(0.02, ge=0, le=0.5, description="The canary promotes a challenger whose primary "
                                   "metric is not worse than the control's by more than this share, with confidence.")
    guardrails: Guardrails = Field(default_factory=Guardrails)
    status: Literal["running", "stopped", "promoted", "rolled back"] = "running"
    reason: str | None = Field(None, max_length=2000, description="Why it stopped, was promoted or rolled back.")
    ended_at: datetime | None = Field(None, description="When it stopped, was promoted or rolled back.")
    canary: bool = Field(False, description="Started by the nightly job (rollout: experiment).")

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        for p in self.placements:
            if not re.fullmatch(PLACEMENT, p):
                raise ValueError(f"placement {p!r} is not a placement name ({PLACEMENT})")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        if abs(sum(v.share for v in self.variants) - 1) > 1e-6:
            raise ValueError(f"the variants' shares sum to {sum(v.share for v in self.variants):g}, not 1")
        if self.mode == "interleave" and len(self.variants) != 2:
            raise ValueError("interleaving compares exactly two variants")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("the experiment ends before it starts")
        return self

    def active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return (self.status == "running" and (self.start is None or utc(self.start) <= now)
                and (self.end is None or now < utc(self.end)))

    def assign(self, key: str) -> Variant:
        """The variant of the shopper or session ``key``: uniform in [0, 1) from the salted hash, cut by the shares."""
        u = int.from_bytes(hashlib.sha256(f"{self.salt}:{key}".encode()).digest()[:8], "big") / 2.0**64
        acc = 0.0
        for v in self.variants:
            acc += v.share
            if u < acc:
                return v
        return self.variants[-1]

    def tag(self, variant: Variant | None) -> str:
        """The served log's ``variant`` value."""
        return f"{self.experiment_id}:{variant.name if variant else 'interleave'}"


def utc(t: datetime | None) -> datetime | None:
    """A time without a zone read as UTC (an API caller may send either)."""
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def running_on(experiments: list[Experiment], placement: str | None, now: datetime | None = None) -> Experiment | None:
    """The active experiment on ``placement`` (one at most: the store refuses overlaps)."""
    if placement is None:
        return None
    return next((e for e in experiments if placement in e.placements and e.active(now)), None)


def overlapping(experiments: list[Experiment], new: Experiment) -> Experiment | None:
    """An active experiment, other than ``new`` itself, that shares a placement with it."""
    return next((e for e in experiments if e.experiment_id != new.experiment_id and e.status == "running"
                 and set(e.placements) & set(new.placements)), None)


class VariantBundles:
    """Bundles held beside the live one for experiments, loaded on first need in a background thread
    (until loaded, the variant is not served: its shoppers get the live page, untagged), dropped when
    no running experiment names them. ``load`` is serving/reload.py's ``load_for_service``."""

    def __init__(self, load) -> None:
        self.load, self.lock = load, threading.Lock()
        self.bundles: dict[str, object] = {}
        self.loading: set[str] = set()
        self.failed: dict[str, str] = {}
        # bundle -> its channels-off view; held weakly, so a view goes with the bundle it was made of
        self.views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, version: str):
        with self.lock:
            b = self.bundles.get(version)
            if b is not None or version in self.loading or version in self.failed:
                return b
            self.loading.add(version)
        threading.Thread(target=self._load, args=(version,), daemon=True, name=f"variant-{version}").start()
        return None

    def _load(self, version: str) -> None:
        try:
            b = self.load(version)
        except Exception as e:  # a variant that does not load is reported, never served
            log.error("experiment variant bundle %s refused: %s", version, e)
            with self.lock:
                self.failed[version] = str(e)
                self.loading.discard(version)
            return
        with self.lock:
            self.bundles[version] = b
            self.loading.discard(version)
        log.info("experiment variant bundle %s loaded", version)

    def keep_only(self, versions: set[str]) -> None:
        with self.lock:
            for v in set(self.bundles) - versions:
                del self.bundles[v]
            self.failed = {v: e for v, e in self.failed.items() if v in versions}

    def without_channels(self, b):
        """The bundle with its recall channels off (a shallow view: arrays shared)."""
        with self.lock:
            view = self.views.get(b)
            if view is None:
                view = copy.copy(b)
                view.channels = None
                self.views[b] = view
            return view


class Guard:
    """Each worker's counters of every challenger variant's requests, server errors and latency. A
    variant past its guardrails (error rate, p99) stops its experiment through the shared log — at
    once in this worker, within a poll in the others — as "rolled back" when the nightly canary
    started it. The CTR floor needs the logs: the analysis checks it (serving/experiment_stats.py)."""

    def __init__(self, save, check_every: int = 50, window: int = 2000) -> None:
        self.save, self.check_every, self.window = save, check_every, window
        self.lock = threading.Lock()
        self.counts: dict[str, list] = {}  # tag -> [requests, errors, recent latencies (ms)]
        self.ended_for_refusal: set[str] = set()  # experiments ended here for a refused bundle

    def record(self, exp: Experiment, variant: Variant, ms: float, error: bool) -> None:
        if variant is exp.variants[0]:
            return  # the control is what the challengers are held against
        tag = exp.tag(variant)
        with self.lock:
            c = self.counts.setdefault(tag, [0, 0, deque(maxlen=self.window)])
            c[0] += 1
            c[1] += error
            c[2].append(ms)
            due = c[0] % self.check_every == 0
            n, errors, lat = c[0], c[1], list(c[2]) if due else []
        if due and n >= exp.guardrails.min_requests:
            self._check(exp, variant, n, errors, lat)

    def refused(self, exp: Experiment, variant: Variant, why: str) -> None:
        """A variant whose bundle the service refused: its experiment ends (once per worker)."""
        with self.lock:
            if exp.experiment_id in self.ended_for_refusal:
                return
            self.ended_for_refusal.add(exp.experiment_id)
        self._end(exp, f"{variant.name}: the service refused bundle {variant.bundle}: {why}")

    def _end(self, exp: Experiment, why: str) -> None:
        log.error("experiment %s ended: %s", exp.experiment_id, why)
        self.save(exp.model_copy(update={"status": "rolled back" if exp.canary else "stopped",
                                         "reason": f"guardrail: {why}", "ended_at": datetime.now(UTC)}))

    def _check(self, exp: Experiment, variant: Variant, n: int, errors: int, lat: list[float]) -> None:
        g, why = exp.guardrails, None
        if errors / n > g.max_error_rate:
            why = f"{variant.name}: {errors} of {n} requests failed ({errors / n:.1%} > {g.max_error_rate:.1%})"
        elif g.max_p99_ms is not None and (p99 := float(np.percentile(lat, 99))) > g.max_p99_ms:
            why = f"{variant.name}: p99 {p99:.1f} ms > {g.max_p99_ms:g} ms over its last {len(lat)} requests"
        if why is not None:
            self._end(exp, why)
