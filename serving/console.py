"""The merchandisers' console's numbers as response models: the JSON routes (serving/routers/
analytics.py, serving/routers/merch.py) and the pages (serving/routers/pages.py) call the same
functions, computed by serving/analytics.py and read from the run summaries (bundle/runs.py)."""

from __future__ import annotations

import numpy as np

from bundle.runs import gate_table, nights, tonight
from serving import analytics as an
from serving.catalog import segment
from serving.loaded_bundle import LoadedBundle
from serving.merch_schemas import CatalogMap, Confusion, ExposureReport, Night, PhotoChecks, Quality, Tonight
from serving.state import ServiceState


def exposure_of(state: ServiceState, bundle: LoadedBundle, shoppers: int, k: int) -> an.Exposure:
    return state.exposure_cache.get(bundle, state.merch.rules(), shoppers, k, state.settings.candidates)


def tonight_report(state: ServiceState) -> Tonight:
    """The latest nightly run: published or refused, the gate's deciding metric, candidate against
    live for every headline metric; the live bundle and its size."""
    b, t = state.bundle, tonight(state.settings.artifacts_dir)
    night = Night(**{k: t[k] for k in Night.model_fields}) if t else None
    return Tonight(live_version=b.version if b else None, items=b.catalog.n_items if b else 0,
                   shoppers=len(b.shoppers) if b else 0, night=night, deltas=t["deltas"] if t else [],
                   gate=gate_table(t["gate"]) if t else [])


def quality_report(state: ServiceState) -> Quality:
    """Every model's headline metrics and the guard metrics, night by night (oldest first)."""
    return Quality(nights=nights(state.settings.artifacts_dir))


def exposure_report(bundle: LoadedBundle, state: ServiceState, shoppers: int, k: int) -> ExposureReport:
    """What the service shows a sample of known shoppers on their home page, rules included."""
    e = exposure_of(state, bundle, shoppers, k)
    live = an.live_mask(bundle)
    cat = bundle.catalog

    def name(r: int, n: int) -> dict:
        return {"item_id": cat.item_ids[r], "title": cat.titles[r], "recommended": n}

    cats = [c | {"most": [name(r, n) for r, n in c["most"]], "never_sample": [name(r, 0) for r in c["never_sample"]]}
            for c in an.by_category(e.counts, cat.category_of(np.arange(len(e.counts))), live)]
    return ExposureReport(bundle_version=bundle.version, shoppers=e.requests, k=k,
                          coverage=an.coverage(e.counts, live), gini=an.gini(e.counts[live]),
                          fallback_share=e.fallback / max(e.requests, 1), long_tail=an.long_tail(e.counts, live),
                          categories=cats, seconds=round(e.seconds, 3))


def photo_checks(bundle: LoadedBundle, state: ServiceState, shoppers: int, limit: int) -> PhotoChecks:
    """Products whose photo the image model confidently puts in another category, not decided yet,
    the most recommended first."""
    e = exposure_of(state, bundle, shoppers, an.K)
    items = an.photos_to_check(bundle, e.counts, set(state.merch.decisions()))
    return PhotoChecks(bundle_version=bundle.version, total=len(items),
                       items=[i | {"saliency_url": f"/v1/analytics/photos/{segment(i['item_id'])}/saliency.png"}
                              for i in items[:limit]])


def catalog_map(bundle: LoadedBundle, n: int) -> CatalogMap:
    """A 2-D PCA projection of ``n`` random products' image embeddings."""
    bundle.require_images()
    return CatalogMap(**an.embedding_map(bundle, n))


def confusion(bundle: LoadedBundle) -> Confusion:
    """The image model's prediction against the catalog's category over the live catalog's photos."""
    bundle.require_images()
    return Confusion(**an.confusion(bundle))
