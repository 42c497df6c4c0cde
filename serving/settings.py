"""Serving settings (environment variables prefixed ``VITRINE_``, or a ``.env`` file)."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.state_logs import URL as STATE_URL


class ServingSettings(BaseSettings):
    # Secrets may also come as files named like the variables (``vitrine_admin_token``) in systemd's
    # credentials directory (LoadCredential=, docs/operations.md): never in the unit's Environment=.
    model_config = SettingsConfigDict(env_prefix="VITRINE_", env_file=".env", extra="ignore",
                                      secrets_dir=os.environ.get("CREDENTIALS_DIRECTORY"))

    artifacts_dir: Path = Path("artifacts")
    admin_token: str | None = Field(None, min_length=16, description="Bearer token of the admin role: writes "
                                    "(catalog, rules, labels, reload), and everything the read role may (at least "
                                    "16 characters); unset = no admin (docs/security.md).")
    read_token: str | None = Field(None, min_length=16, description="Bearer token of the read role: the console, "
                                   "analytics and personal data (shopper lists, histories, previews, explanations "
                                   "naming history items); unset = only the admin token reads them.")
    session_ttl_s: int = Field(8 * 3600, ge=60, description="How long a console login (an HttpOnly cookie) lasts.")
    demo_shoppers: bool = Field(False, description="The storefront page lists known shoppers to shop as (the "
                                "demo's switch): their ids are personal data, off by default.")
    image_roots: list[Path] = Field(default_factory=list, description="Folders a bundle's image_root may name when "
                                    "its manifest came from a bundle store (JSON list); local bundles are trusted.")
    bundle_key: str | None = Field(None, min_length=16, description="Shared secret of the nightly job and the "
                                   "replicas: bundles must carry its HMAC signature (bundle/versions.py).")
    candidates: int = Field(100, ge=10, le=2000, description="Retrieved per request before the ranker.")
    channels: bool = Field(True, description="Add the bundle's item-to-item and popular-in-category candidates "
                           "(recsys/channels.py); false = the tower's list only, a latency switch that costs quality.")
    max_k: int = Field(100, ge=1, le=1000)
    max_offset: int = Field(500, ge=0)
    max_history: int = Field(50, ge=1, description="Most recent_item_ids / exclude ids accepted per request.")
    max_upload_bytes: int = Field(5 << 20, ge=1024)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest non-upload request body (413 past it).")
    max_concurrent_decodes: int = Field(4, ge=1, description="Photos decoded at once per process.")
    decode_wait_s: float = Field(2.0, gt=0, description="Longest wait for a decode slot before a 503.")
    max_image_pixels: int = Field(25_000_000, ge=1024, description="Decompression-bomb guard for uploads.")
    mmap: bool = Field(True, description="Open the bundle's arrays and indexes memory-mapped, copy-on-write, so "
                       "the workers of one host share one copy in the page cache (live changes stay private).")
    workers: int = Field(1, ge=1, description="Server processes on this host (`vitrine serve --workers` sets it): "
                         "each sizes its thread pools to its share of the cores (common/threads.py).")
    ort_threads: int = Field(1, ge=1, description="intra-op threads per ONNX Runtime session (a batch is small: "
                             "a second thread costs CPU and buys no requests/s; run more workers instead).")
    faiss_threads: int = Field(1, ge=1, description="OpenMP threads per FAISS search (as ort_threads).")
    max_batch: int = Field(32, ge=1, description="Most concurrent recommendation requests run as one batch.")
    batch_wait_ms: float = Field(2.0, ge=0, le=50, description="Longest a queued request waits for the requests "
                                 "still reading their bodies to join its batch (serving/batcher.py).")
    gil_switch_interval_s: float = Field(0.0002, gt=0, description="sys.setswitchinterval for the server process.")
    watch_interval_s: float = Field(0.0, ge=0, description="Poll CURRENT and reload on change; 0 = off.")
    public_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json; false = not at all.")
    public_metrics: bool = Field(False, description="Serve /metrics to anyone; false = only with a read or admin "
                                 "token (Prometheus: bearer_token_file).")
    changes_poll_s: float = Field(1.0, ge=0, description="Apply admin changes other workers logged, this "
                                  "often; 0 = off (one worker).")
    state_url: str | None = Field(None, pattern=STATE_URL, description="Redis URL "
                                  "(redis://host:6379/0) holding the live state replicas share: admin changes, "
                                  "rules, label decisions, experiments, real-time shopper events "
                                  "(common/state_logs.py); unset = files under artifacts_dir (one host).")
    bundle_store: str | None = Field(None, description="fsspec URL of a bundle store (s3://bucket/prefix, "
                                     "file:///shared/vitrine): its CURRENT and that bundle are pulled into "
                                     "artifacts_dir before each load (bundle/object_store.py).")
    warm_analytics: bool = Field(True, description="Compute the console's exposure sample (serving/analytics.py) "
                                 "in the background whenever a bundle is installed; false = on the first visit.")
    device: str = Field("auto", description="auto | cpu | cuda: ONNX Runtime's provider and where FAISS indexes live "
                        "(GPUs when FAISS sees any, unless cpu).")
    # The closed loop (docs/online.md): events in, served lists logged, real-time state
    events: bool = Field(True, description="Take events (POST /v1/events) and log served lists under "
                         "artifacts_dir/events (bundle/logs.py).")
    events_max_future_s: float = Field(300.0, ge=0, description="An event's ts may be this far in the future.")
    events_max_past_s: float = Field(7 * 86400.0, ge=0, description="An event's ts may be this far in the past.")
    events_retention_days: int = Field(90, ge=1, description="Converted log segments older than this are deleted.")
    events_segment_bytes: int = Field(64 << 20, ge=1 << 16, description="A log segment is closed past this size...")
    events_segment_age_s: float = Field(300.0, gt=0, description="... or this age, then converted to Parquet.")
    events_max_pending: int = Field(200_000, ge=1000, description="Records waiting for the disk before the events "
                                    "API answers 503 with Retry-After.")
    events_grace_s: float = Field(5.0, ge=0, description="A closed segment waits this long before its conversion "
                                  "(every worker's real-time tail reads its end first).")
    click_window: timedelta = Field(timedelta(hours=24), description="A click without a rec_id is credited to the "
                                    "latest list that showed its item to the same shopper or session this recently.")
    purchase_window: timedelta = Field(timedelta(days=7), description="... and a cart or a purchase, this recently.")
    explore_rate: float = Field(0.0, ge=0, le=1, description="Share of recommendation pages whose top "
                                "explore_positions are shuffled, each item's propensity logged, for off-policy "
                                "estimates (serving/off_policy.py); 0: off.")
    explore_positions: int = Field(10, ge=2, le=100, description="How many top positions exploration shuffles.")
    explore_placements: list[str] = Field(default_factory=list, description="Placements explored (JSON list); "
                                          "empty: every placement.")
    realtime: bool = Field(True, description="Shoppers' and sessions' recent events join their next recommendation.")
    realtime_events: int = Field(20, ge=1, le=1000, description="Recent events kept per shopper or session.")
    realtime_shoppers: int = Field(100_000, ge=100, description="Shoppers and sessions kept (least recently active "
                                   "dropped first).")
    realtime_poll_s: float = Field(0.2, gt=0, le=5, description="How often each worker reads the others' events.")

    @model_validator(mode="after")
    def _state_is_followed(self) -> ServingSettings:
        if self.state_url and self.changes_poll_s <= 0:
            raise ValueError("VITRINE_STATE_URL needs VITRINE_CHANGES_POLL_S > 0: the workers read the shared "
                             "state in the background, never on a request")
        return self


@lru_cache
def get_settings() -> ServingSettings:
    return ServingSettings()
