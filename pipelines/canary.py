"""The nightly canary (docs/experiments.md): with ``rollout: experiment`` a bundle that passed the
gate is not promoted; it starts serving a share of the shoppers as the challenger of an experiment
against the live bundle (serving/experiments.py), and the next decision — the start of every nightly
run, or ``vitrine experiments decide`` from a scheduler — acts on what the shoppers did:

- promoted (CURRENT moves to it) when the always-valid interval of its primary metric's lift says
  better, or not worse than the control by more than the non-inferiority margin;
- rolled back at once on a guardrail breach: the service ends it itself on errors, latency or a
  bundle it refuses (serving/experiments.py ``Guard``); the decision ends it on a CTR below the
  floor, a sample-ratio mismatch (the assignment is broken, so are the numbers), a "worse"
  verdict, or no verdict by its end date;
- otherwise it keeps running.
Every decision is saved with its reason in the experiments log (the console's Experiments page) and
in the run summary (``canary``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bundle.logs import log_dir
from bundle.versions import current_version
from common.state_logs import open_state
from pipelines.settings import get_settings
from serving.experiment_stats import experiment_analysis
from serving.experiments import Experiment, Guardrails, Variant, utc
from serving.merch_store import MerchStore

log = logging.getLogger(__name__)


def _store(artifacts: Path) -> MerchStore:
    """The experiments the service keeps: files under ``artifacts`` or its Redis (VITRINE_STATE_URL)."""
    return MerchStore(artifacts, state=open_state(get_settings().state_url, artifacts))


def start_canary(artifacts: Path, version: str, *, placements: list[str], share: float, days: float, margin: float,
                 metric: str, min_impressions: int, now: datetime | None = None) -> dict:
    """Tonight's bundle as the challenger of the live one. Earlier canaries still running are rolled
    back (superseded). Refused — nothing starts, CURRENT stays — when a merchandiser's experiment
    holds one of the placements; the bundle stays published for a later night."""
    now = now or datetime.now(UTC)
    store = _store(artifacts)
    live = current_version(artifacts)
    running = [e for e in store.experiments(fresh=True) if e.status == "running"]
    held = [e for e in running if not e.canary and set(e.placements) & set(placements)]
    if held:
        why = f"experiment {held[0].experiment_id!r} holds {sorted(set(held[0].placements) & set(placements))}"
        log.warning("canary of %s not started: %s", version, why)
        return {"status": "not started", "challenger": version, "reason": why}
    for e in running:
        if e.canary:
            store.save_experiment(e.model_copy(update={"status": "rolled back", "ended_at": now,
                                                       "reason": f"superseded by tonight's {version}"}))
    exp = store.save_experiment(Experiment(
        name=f"nightly canary {version}", placements=placements, canary=True, primary_metric=metric,
        non_inferiority=margin, start=now, end=now + timedelta(days=days),
        guardrails=Guardrails(min_impressions=min_impressions),
        variants=[Variant(name="live", share=1 - share, bundle=live), Variant(name="candidate", share=share,
                                                                              bundle=version)]))
    log.info("canary %s: %s serves %.0f %% of %s against %s", exp.experiment_id, version, 100 * share,
             placements, live)
    return {"status": "running", "experiment_id": exp.experiment_id, "challenger": version, "control": live}


def decide_canaries(artifacts: Path, publish: Callable[[str], str], *, since: datetime | None = None,
                    now: datetime | None = None) -> list[dict]:
    """Decide every running canary (``publish(version)`` promotes, pushes and reloads; it returns the
    reload's answer). Returns the decisions made now and those the service made since ``since``."""
    now = now or datetime.now(UTC)
    store = _store(artifacts)
    out = []
    for e in store.experiments(fresh=True):
        if not e.canary:
            continue
        if e.status != "running":
            if since is not None and e.ended_at is not None and e.ended_at >= since:
                out.append(_record(e, "by the service"))
            continue
        status, reason = _verdict(artifacts, e, now)
        if status == "running":
            out.append(_record(e, "not yet") | {"reason": reason})
            continue
        if status == "promoted":
            challenger = e.variants[1].bundle
            answer = publish(challenger)
            reason += f"; CURRENT -> {challenger} ({answer})"
        e = store.save_experiment(e.model_copy(update={"status": status, "reason": reason, "ended_at": now}))
        log.info("canary %s %s: %s", e.experiment_id, status, reason)
        out.append(_record(e, "tonight"))
    return out


def _verdict(artifacts: Path, e: Experiment, now: datetime) -> tuple[str, str]:
    a = experiment_analysis(log_dir(artifacts), e, now=now)
    if a.guardrail_breach:
        return "rolled back", f"guardrail: {a.guardrail_breach}"
    if a.srm_flagged:
        shoppers = ", ".join(f"{v.name} {v.shoppers}" for v in a.variants)
        return "rolled back", f"sample-ratio mismatch (p = {a.srm_p:.2g}: {shoppers}): the assignment is broken"
    end = utc(e.end)
    over = end is not None and now >= end
    if not a.comparisons:
        return ("rolled back", f"nothing served in it by its end ({end:%Y-%m-%d})") if over else \
            ("running", "undecided: nothing served in it yet")
    c = a.comparisons[0]
    lift = c.lift_always_valid
    said = (f"{c.metric} lift {c.lift.value:+.2%} (always-valid 95 % interval {lift.low:+.2%} .. {lift.high:+.2%}, "
            f"p = {c.p_always_valid:.3g}) over {sum(v.shoppers for v in a.variants):,} shoppers")
    if c.decision in ("better", "not worse"):
        return "promoted", f"{c.decision} than the live bundle: {said}"
    if c.decision == "worse":
        return "rolled back", f"worse than the live bundle: {said}"
    if over:
        return "rolled back", f"no decision by its end ({end:%Y-%m-%d}): {said}"
    days = f", about {c.days_to_decision:.1f} more days at this traffic" if c.days_to_decision is not None else ""
    return "running", f"undecided: {said}{days}"


def experiment_bundles(artifacts: Path) -> set[str]:
    """The bundle versions running experiments serve (``retain`` keeps them)."""
    return {v.bundle for e in _store(artifacts).experiments(fresh=True) if e.status == "running"
            for v in e.variants if v.bundle}


def _record(e: Experiment, when: str) -> dict:
    return {"experiment_id": e.experiment_id, "challenger": e.variants[1].bundle, "control": e.variants[0].bundle,
            "status": e.status, "reason": e.reason, "decided": when}
