"""Loading a bundle for service: verify, load, replay live changes, smoke-test, then swap."""

from __future__ import annotations

import gc
import logging
import threading

from bundle.object_store import pull_current
from bundle.versions import bundles_dir, current_version, list_bundles
from serving.live import apply_labels, catch_up, replay
from serving.loaded_bundle import LoadedBundle, load_current
from serving.metrics import BUNDLE, INDEX_SIZE, RELOADS
from serving.settings import ServingSettings
from serving.smoke import smoke
from serving.state import ServiceState

log = logging.getLogger(__name__)


def load_for_service(state: ServiceState, version: str | None = None) -> LoadedBundle:
    """CURRENT's bundle (or ``version``), its live changes replayed, smoke-tested."""
    s = state.settings
    b = load_current(s) if version is None else LoadedBundle(bundles_dir(s.artifacts_dir) / version, s)
    replay(b, state.changes(b.version))
    apply_labels(b, state.merch.label_entries(fresh=True))
    smoke(b)
    return b


def fall_back(state: ServiceState) -> tuple[bool, str]:
    """CURRENT was refused: serve the newest older bundle that loads, and say so (``/readyz``)."""
    want = current_version(state.settings.artifacts_dir)
    refused = state.last_error
    for v in reversed([v for v in list_bundles(state.settings.artifacts_dir) if want is None or v < want]):
        try:
            b = load_for_service(state, v)
        except Exception as e:  # any load failure means: try the next older one
            log.warning("fallback candidate %s refused: %s", v, e)
            continue
        install(state, b)
        state.degraded = f"serving {v} because {refused}"
        log.error("degraded: %s", state.degraded)
        return True, state.degraded
    return False, refused or "no bundle to serve"


def install(state: ServiceState, b: LoadedBundle) -> None:
    state.bundle, state.last_error, state.degraded = b, None, None  # requests see old or new, never half
    # A bundle is many long-lived Python objects (id maps, per-user arrays): move them out of the
    # cyclic GC's reach, or every full collection walks them all and stalls requests for tens of ms.
    gc.collect()
    gc.freeze()
    BUNDLE.info({"version": b.version, "created_at": str(b.manifest.get("created_at"))})
    if state.settings.warm_analytics:
        threading.Thread(target=state.exposure_cache.warm, args=(b, state.merch.rules(), state.settings.candidates),
                         daemon=True, name="warm-exposure").start()
    INDEX_SIZE.labels("items").set(b.items_index.n_live)
    INDEX_SIZE.labels("images").set(b.image_index.n_live if b.image_index is not None else 0)


def sync_store(settings: ServingSettings) -> None:
    """With a bundle store configured: bring its CURRENT here first. A store that cannot be read is
    logged; the local CURRENT keeps serving."""
    if settings.bundle_store:
        try:
            pull_current(settings.bundle_store, settings.artifacts_dir, settings.bundle_key)
        except Exception:
            log.exception("could not pull CURRENT from %s; serving what is local", settings.bundle_store)


def reload_current(state: ServiceState, *, sync: bool = True) -> tuple[bool, str]:
    """Load what CURRENT names (if it differs from what is served) and swap it in. (ok, detail).
    ``sync``: pull the bundle store's CURRENT first (the watcher has just done it)."""
    with state.reload_lock:
        if sync:
            sync_store(state.settings)
        want = current_version(state.settings.artifacts_dir)
        if state.bundle is not None and want == state.bundle.version:
            return True, f"already serving {want}"
        try:
            b = load_for_service(state)
        except Exception as e:  # ONNX Runtime's load errors (InvalidProtobuf, Fail) are types of their own
            RELOADS.labels("refused").inc()
            state.last_error = f"bundle {want} refused: {type(e).__name__}: {e}"
            log.error("%s; still serving %s", state.last_error, state.bundle.version if state.bundle else None)
            return False, state.last_error
        old = state.bundle.version if state.bundle else None
        install(state, b)
        RELOADS.labels("ok").inc()
        log.info("now serving %s (was %s)", b.version, old)
        return True, f"swapped {old} -> {b.version}"


def follow_changes(state: ServiceState, stop: threading.Event) -> None:
    """Background loop: apply the admin changes and label decisions other processes logged."""
    while not stop.wait(state.settings.changes_poll_s):
        state.merch.refresh()  # rules, labels, experiments (never fails: a store that is down keeps the last)
        b = state.bundle
        if b is None:
            continue
        try:
            n = catch_up(b, state.changes(b.version))
            apply_labels(b, state.merch.label_entries())
        except Exception:  # the loop must outlive any one bad read
            log.exception("following the change log of %s failed", b.version)
            continue
        if n:
            INDEX_SIZE.labels("items").set(b.items_index.n_live)


def watch_current(state: ServiceState, stop: threading.Event) -> None:
    """Background loop: reload whenever CURRENT names a different version."""
    while not stop.wait(state.settings.watch_interval_s):
        sync_store(state.settings)
        want = current_version(state.settings.artifacts_dir)
        if want is not None and (state.bundle is None or want != state.bundle.version):
            if state.last_error and want in state.last_error:
                continue  # already refused this version; wait for a new one
            reload_current(state, sync=False)
