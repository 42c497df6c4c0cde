"""The nightly quality gate (docs/operations.md, "The gate"): tonight's candidate against the live
bundle, scored on the same holdout.

Comparing tonight's offline headline with the number stored in CURRENT's manifest compares two
different holdouts: day-to-day changes of the test window and training noise alone refused good
models or passed worse ones. Here both bundles answer the same seeded sample of tonight's test
shoppers through the served path (serving/holdout.py ``serve_holdout``: the function behind
``POST /v1/recommendations``), each shopper's state as of the end of tonight's validation period,
their earlier items masked, and the gate decides on the paired per-shopper difference:

- headline: NDCG@k per shopper; the difference's mean with a bootstrap confidence interval over
  shoppers (scipy.stats.bootstrap, BCa). Refused when even the interval's upper end is below
  ``-gate_margin`` × the live bundle's mean: worse beyond the margin, with confidence.
- guards (what gets recommended: coverage, Gini, the popular fallback's share): the same paired
  bootstrap over shoppers, each refused only when worse beyond its own margin with confidence.
- the live bundle cannot be scored on tonight's data (it does not load, its feature spec does not
  fit, most of the holdout's items are unknown to it): the gate says so and decides by the old rule
  (tonight's offline headline against the one in CURRENT's manifest), recorded as such.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from bundle.versions import BundleError, bundles_dir, current_version, read_manifest
from recsys.metrics import ndcg_per_user
from serving.holdout import serve_holdout

log = logging.getLogger(__name__)

# What gets recommended, compared like the headline: (direction, margin, whether the margin is a share
# of the live value). Generous on purpose: a guard stops a collapse (one page for everyone), not noise.
GUARDS = {"coverage": ("higher", 0.5, True), "gini": ("lower", 0.05, False), "fallback_share": ("lower", 0.05, False)}
UNKNOWN_ITEMS_MAX = 0.5  # past this share of the holdout's items unknown to the live bundle, it cannot be scored


@dataclass
class Holdout:
    """A seeded sample of tonight's test shoppers: who, what they did before (train + valid: their
    state and the items masked), and what they did in the test period (relevant)."""

    users: pd.DataFrame  # their rows of the dataset's users table
    events: pd.DataFrame  # their train + valid events
    exclude: list[list[str]]  # per shopper, the items they touched before the test period, latest first
    relevant: list[list[str]]  # per shopper, the distinct items of their test period


def sample_holdout(data: Path, split_dir: Path, n: int, seed: int) -> Holdout:
    """``n`` shoppers with test events (seeded), from tonight's split (the nightly's split step)."""
    test = pd.read_parquet(split_dir / "test.parquet", columns=["user_id", "item_id"])
    who = np.sort(test["user_id"].astype(str).unique())
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(who, min(n, len(who)), replace=False))
    before = pd.concat([pd.read_parquet(split_dir / f"{p}.parquet") for p in ("train", "valid")])
    before = before[before["user_id"].astype(str).isin(chosen)]
    users = pd.read_parquet(data / "users.parquet")
    users = users[users["user_id"].astype(str).isin(chosen)].copy()
    users["user_id"] = users["user_id"].astype(str)
    missing = sorted(set(chosen) - set(users["user_id"]))
    if missing:  # shoppers the users table lacks (events only): featureless, as assembly treats them
        users = pd.concat([users, pd.DataFrame({"user_id": missing})], ignore_index=True)
    users = users.set_index("user_id").loc[chosen].reset_index()
    latest_first = before.sort_values("ts", ascending=False, kind="stable")
    seen = latest_first.groupby(latest_first["user_id"].astype(str))["item_id"].agg(lambda s: list(pd.unique(s)))
    rel = test.groupby(test["user_id"].astype(str))["item_id"].agg(lambda s: list(pd.unique(s)))
    return Holdout(users, before, [seen.get(u, []) for u in chosen], [rel[u] for u in chosen])


def _ndcg(pages: list[list[str]], relevant: list[list[str]], k: int) -> np.ndarray:
    """(U,) NDCG@k of each shopper's page against their relevant items (ids to one shared code)."""
    codes: dict[str, int] = {}
    top = np.full((len(pages), k), -1, np.int64)
    for u, p in enumerate(pages):
        for j, i in enumerate(p[:k]):
            top[u, j] = codes.setdefault(i, len(codes))
    rel = [np.array([codes.setdefault(i, len(codes)) for i in r], np.int64) for r in relevant]
    return ndcg_per_user(top, rel, k)


def _page_guards(pages: list[list[str]], fallback: np.ndarray, n_items: int) -> dict[str, float]:
    counts = pd.Series([i for p in pages for i in p]).value_counts().to_numpy(np.float64)
    x = np.sort(np.concatenate([counts, np.zeros(max(n_items - len(counts), 0))]))
    n, total = len(x), x.sum()
    gini = float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * total)) if total else 0.0
    return {"coverage": len(counts) / max(n_items, 1), "gini": gini, "fallback_share": float(fallback.mean())}


def _interval(values: np.ndarray, statistic, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Bootstrap interval over shoppers (paired: one resample of shopper indices drives both bundles)."""
    if len(values) < 2 or np.ptp(values) == 0:
        v = float(statistic(values))
        return v, v
    res = sps.bootstrap((values,), statistic, confidence_level=confidence, n_resamples=resamples,
                        method="BCa" if statistic is np.mean else "percentile", random_state=seed, vectorized=False)
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def paired_gate(candidate: Path, candidate_manifest: dict, live: Path, data: Path, split_dir: Path, *,
                margin: float, k: int, shoppers: int, confidence: float, resamples: int, seed: int,
                candidates: int = 100) -> dict:
    """Both bundles over one holdout; the verdict and everything a person needs to check it."""
    t = time.perf_counter()
    h = sample_holdout(data, split_dir, shoppers, seed)
    if not len(h.relevant):
        raise ValueError("tonight's test period has no shopper to score")
    cand = serve_holdout(candidate, h.users, h.events, h.exclude, k, candidates=candidates,
                         manifest=candidate_manifest)
    live_pages = serve_holdout(live, h.users, h.events, h.exclude, k, candidates=candidates)
    wanted = {i for r in h.relevant for i in r}
    unknown = len(wanted - live_pages.known_items) / max(len(wanted), 1)
    if unknown > UNKNOWN_ITEMS_MAX:
        raise ValueError(f"{unknown:.0%} of the holdout's items are unknown to the live bundle")
    nc, nl = _ndcg(cand.pages, h.relevant, k), _ndcg(live_pages.pages, h.relevant, k)
    diff = nc - nl
    lo, hi = _interval(diff, np.mean, confidence, resamples, seed)
    floor = -margin * float(nl.mean())
    idx = np.arange(len(diff))
    guards = {}
    for name, (direction, g_margin, relative) in GUARDS.items():
        def g_diff(sample: np.ndarray, name: str = name) -> float:
            s = sample.astype(np.int64)
            return (_page_guards([cand.pages[i] for i in s], cand.fallback[s], cand.n_items)[name]
                    - _page_guards([live_pages.pages[i] for i in s], live_pages.fallback[s], live_pages.n_items)[name])
        c_val = _page_guards(cand.pages, cand.fallback, cand.n_items)[name]
        l_val = _page_guards(live_pages.pages, live_pages.fallback, live_pages.n_items)[name]
        g_lo, g_hi = _interval(idx, g_diff, confidence, max(200, resamples // 5), seed)
        bound = g_margin * (abs(l_val) if relative else 1.0)
        worse = g_hi < -bound if direction == "higher" else g_lo > bound
        guards[name] = {"candidate": c_val, "live": l_val, "difference": c_val - l_val, "ci": [g_lo, g_hi],
                        "margin": bound, "refused": bool(worse)}
    metric = f"ndcg@{k}"
    record = {"method": "paired", "metric": metric, "shoppers": len(diff), "confidence": confidence,
              "candidate": float(nc.mean()), "live": float(nl.mean()), "difference": float(diff.mean()),
              "ci": [lo, hi], "floor": floor, "baseline": live_pages.version, "guards": guards,
              "unknown_items": unknown, "seconds": round(time.perf_counter() - t, 1),
              "serve_seconds": {"candidate": round(cand.seconds, 1), "live": round(live_pages.seconds, 1)}}
    pct = f"{confidence:.0%}"
    said = (f"{metric} on tonight's holdout ({len(diff):,} shoppers): candidate {nc.mean():.4f}, live "
            f"{live_pages.version} {nl.mean():.4f}, difference {diff.mean():+.4f} ({pct} CI {lo:+.4f} … {hi:+.4f})")
    if hi < floor:
        return record | {"passed": False, "reason": f"{said} is below {floor:+.4f} ({margin:.0%} of live) with "
                                                     "confidence"}
    bad = [f"{n} {g['candidate']:.4g} vs {g['live']:.4g} ({pct} CI of the difference {g['ci'][0]:+.4g} … "
           f"{g['ci'][1]:+.4g}, margin {g['margin']:.3g})" for n, g in guards.items() if g["refused"]]
    if bad:
        return record | {"passed": False, "reason": f"guard worse beyond its margin with confidence: {'; '.join(bad)}"}
    return record | {"passed": True, "reason": f"{said}: not worse than {floor:+.4f} ({margin:.0%} of live) with "
                                               "confidence"}


def manifest_rule(artifacts: Path, headline: dict, metric: str, margin: float, why: str | None = None) -> dict:
    """The rule before the paired gate: tonight's offline headline against the one stored in CURRENT's
    manifest (two different holdouts). Used when the live bundle cannot be scored tonight."""
    new = headline[metric]
    cur = current_version(artifacts)
    note = {"method": "manifest", "fallback_reason": why} if why else {"method": "manifest"}
    try:  # the manifest only: reading a metric needs no checksum of every file
        base = read_manifest(bundles_dir(artifacts) / cur)["metrics"]["headline"][metric]
    except (BundleError, KeyError, TypeError) as e:
        return note | {"passed": True, "reason": f"CURRENT {cur} has no comparable metric ({e})", "baseline": None}
    if not math.isfinite(base):
        return note | {"passed": True, "reason": f"CURRENT {cur}'s {metric} is {base}", "baseline": None}
    floor = base * (1 - margin)
    verdict = note | {"metric": metric, "current": base, "new": new, "floor": floor, "baseline": cur}
    prefix = f"live bundle not scored on tonight's holdout ({why}); " if why else ""
    if new < floor:
        return verdict | {"passed": False, "reason": f"{prefix}{metric} {new:.4f} < {floor:.4f} "
                                                     f"({margin:.0%} below CURRENT {cur}'s {base:.4f})"}
    return verdict | {"passed": True, "reason": f"{prefix}{metric} {new:.4f} >= {floor:.4f}"}
