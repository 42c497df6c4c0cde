"""The merchandisers' console's numbers as response models: the JSON routes (serving/routers/
analytics.py, serving/routers/merch.py) and the pages (serving/routers/pages.py) call the same
functions, computed by serving/analytics.py and read from the run summaries (bundle/runs.py)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bundle.runs import gate_table, nights, tonight
from serving import analytics as an
from serving import online
from serving.catalog import segment
from serving.experiment_stats import analyses
from serving.loaded_bundle import LoadedBundle
from serving.merch_schemas import (
    CatalogMap,
    Confusion,
    ExperimentCard,
    ExperimentsReport,
    ExposureReport,
    Night,
    OnlineReport,
    OnlineRow,
    PhotoChecks,
    PositionCtr,
    Quality,
    Tonight,
)
from serving.state import ServiceState

ONLINE_TTL_S = 60.0


def experiments_report(state: ServiceState) -> ExperimentsReport:
    """Every experiment, newest first, each running or recent one with its analysis from the logs."""
    t0 = time.perf_counter()
    exps = list(reversed(state.merch.experiments(fresh=True)))
    shown = [e for e in exps if e.status == "running"] + [e for e in exps if e.status != "running"][:5]
    found = analyses(state.events_root, shown) if state.settings.events else {}
    return ExperimentsReport(experiments=[ExperimentCard(experiment=e, analysis=found.get(e.experiment_id))
                                          for e in exps], seconds=time.perf_counter() - t0)


def exposure_of(state: ServiceState, bundle: LoadedBundle, shoppers: int, k: int) -> an.Exposure:
    return state.exposure_cache.get(bundle, state.merch.rules(), shoppers, k, state.settings.candidates)


def served_exposure(state: ServiceState, bundle: LoadedBundle) -> an.Exposure | None:
    """The lists this bundle really served, as exposure counts per catalog row (None: none logged)."""
    t0 = time.perf_counter()
    got = online.served_exposure(state.events_root, bundle.version)
    if got is None:
        return None
    df, lists, fallback = got
    counts = np.zeros(bundle.catalog.n_items, np.int64)
    found = [bundle.catalog.row_of.get(i) for i in df["item_id"].tolist()]  # None: no longer in the catalog
    keep = np.array([r is not None for r in found], bool)
    np.add.at(counts, np.array([r for r in found if r is not None], np.int64), df["n"].to_numpy(np.int64)[keep])
    return an.Exposure(counts=counts, requests=lists, fallback=fallback, k=0, seconds=time.perf_counter() - t0)


def _rows(df: pd.DataFrame) -> list[OnlineRow]:
    return [OnlineRow(**{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))})
            for r in df.to_dict("records")]


def online_report(state: ServiceState) -> OnlineReport:
    """What the served lists earned (serving/online.py), recomputed at most once a minute."""
    with state.online_lock:
        if state.online_cache and time.monotonic() - state.online_cache[0] < ONLINE_TTL_S:
            return state.online_cache[1]
        t0 = time.perf_counter()
        r = online.report(state.events_root, click_window=state.settings.click_window,
                          purchase_window=state.settings.purchase_window)
        if r is None:
            out = OnlineReport(logged=False, totals=None, daily=[], channels=[], rules=[], versions=[], positions=[],
                               seconds=time.perf_counter() - t0)
        else:
            out = OnlineReport(logged=True, totals=_rows(r["totals"].drop(columns="total"))[0],
                               daily=_rows(r["daily"]), channels=_rows(r["channels"]), rules=_rows(r["rules"]),
                               versions=_rows(r["versions"]),
                               positions=[PositionCtr(**p) for p in r["positions"].to_dict("records")],
                               seconds=round(time.perf_counter() - t0, 3))
        state.online_cache = (time.monotonic(), out)
        return out


def live_online(state: ServiceState, version: str | None) -> OnlineRow | None:
    """The live bundle's online figures, summed over days and variants."""
    rows = [r for r in online_report(state).versions if version and r.version == version]
    if not rows:
        return None
    tot = {k: sum(getattr(r, k) for r in rows) for k in ("impressions", "clicks", "carts", "purchases", "revenue")}
    n = max(tot["impressions"], 1)
    return OnlineRow(version=version, **tot, ctr=tot["clicks"] / n, atc_rate=tot["carts"] / n,
                     conversion=tot["purchases"] / n, rpm=1000 * tot["revenue"] / n)


def tonight_report(state: ServiceState) -> Tonight:
    """The latest nightly run: published or refused, the gate's deciding metric, candidate against
    live for every headline metric; the live bundle and its size."""
    b, t = state.bundle, tonight(state.settings.artifacts_dir)
    night = Night(**{k: t[k] for k in Night.model_fields}) if t else None
    return Tonight(live_version=b.version if b else None, items=b.catalog.n_items if b else 0,
                   shoppers=len(b.shoppers) if b else 0, night=night, deltas=t["deltas"] if t else [],
                   gate=gate_table(t["gate"]) if t else [], online=live_online(state, b.version if b else None))


def quality_report(state: ServiceState) -> Quality:
    """Every model's headline metrics and the guard metrics, night by night (oldest first)."""
    return Quality(nights=nights(state.settings.artifacts_dir))


def exposure_report(bundle: LoadedBundle, state: ServiceState, shoppers: int, k: int) -> ExposureReport:
    """What this bundle really served (the served log), or, before it served anything logged, what
    the service shows a sample of known shoppers on their home page, rules included."""
    e = served_exposure(state, bundle)
    source = "served" if e is not None else "sample"
    if e is None:
        e = exposure_of(state, bundle, shoppers, k)
    live = an.live_mask(bundle)
    cat = bundle.catalog

    def name(r: int, n: int) -> dict:
        return {"item_id": cat.item_ids[r], "title": cat.titles[r], "recommended": n}

    cats = [c | {"most": [name(r, n) for r, n in c["most"]], "never_sample": [name(r, 0) for r in c["never_sample"]]}
            for c in an.by_category(e.counts, cat.category_of(np.arange(len(e.counts))), live)]
    return ExposureReport(bundle_version=bundle.version, source=source, shoppers=e.requests, k=k,
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
