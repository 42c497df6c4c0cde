"""The nightly job's run summaries (``ARTIFACTS/runs/<started>.json``): written by the nightly job
(pipelines/nightly.py, ``write_run``), read by the console (serving/routers/analytics.py) and the
nightly report (pipelines/report.py) through ``nights`` / ``tonight``. One module owns the format.

A summary: ``started_at``, ``finished_at``, ``status`` (published | canary | canary not started |
refused by the gate | failed), ``canary`` (the experiment tonight's bundle started as the challenger
in, pipelines/canary.py) and ``canary_decisions`` (earlier canaries promoted or rolled back),
``version``, ``headline`` (the bundle's headline metrics), ``guards`` (``GUARDS`` of the two-tower),
``gate`` (the quality gate's verdict), ``live_headline`` (the live bundle's headline when the run
started), ``error``, ``data_volume`` (rows and rejects per table), ``steps``, ``config``."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

GUARDS = ("coverage", "gini", "novelty")  # the two-tower's guard metrics (what gets recommended)


def runs_dir(artifacts: Path) -> Path:
    return artifacts / "runs"


def write_run(artifacts: Path, started: str, summary: dict) -> Path:
    """``ARTIFACTS/runs/<started>.json`` (``started``: a sortable UTC stamp), written whole."""
    d = runs_dir(artifacts)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{started}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    tmp.replace(path)
    return path


def last_started(artifacts: Path) -> datetime | None:
    """When the newest run started (the summaries' names sort by it; only that file is read)."""
    runs = sorted(runs_dir(artifacts).glob("*.json"))
    try:
        started = json.loads(runs[-1].read_text()).get("started_at") if runs else None
    except (OSError, json.JSONDecodeError):
        return None
    return datetime.fromisoformat(started) if started else None


def gate_table(gate: dict | None) -> list[dict]:
    """The gate's verdict as rows (what, candidate, live, difference, interval, bound, refused) for the
    nightly report and the console: the paired gate (pipelines/gate.py) gives the headline on tonight's
    holdout and each guard; the manifest rule, one row against the stored headline."""
    if not gate or "metric" not in gate:
        return []
    if gate.get("method") == "paired":
        head = {"what": f"{gate['metric']} on tonight's holdout ({gate['shoppers']:,} shoppers)",
                "candidate": gate["candidate"], "live": gate["live"], "difference": gate["difference"],
                "interval": gate["ci"], "bound": gate["floor"], "refused": gate["ci"][1] < gate["floor"]}
        return [head] + [{"what": name, "candidate": g["candidate"], "live": g["live"], "difference": g["difference"],
                          "interval": g["ci"], "bound": g["margin"], "refused": g["refused"]}
                         for name, g in gate.get("guards", {}).items()]
    return [{"what": f"{gate['metric']} (each on its own night's test window)", "candidate": gate.get("new"),
             "live": gate.get("current"), "difference": None if gate.get("current") is None
             else gate["new"] - gate["current"], "interval": None, "bound": gate.get("floor"),
             "refused": not gate.get("passed", True)}]


def nights(artifacts: Path) -> list[dict]:
    """One record per nightly run, oldest first: status, version, headline metrics, guard metrics,
    the gate's verdict and the live bundle's headline it was compared with. Unreadable files skipped."""
    out = []
    for p in sorted(runs_dir(artifacts).glob("*.json")):
        try:
            s = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable run summary (%s), skipped", p, e)
            continue
        guards = s.get("guards")
        if guards is None and s.get("version"):  # runs from before summaries carried them: the report has them
            rep = artifacts / "reports" / f"{s['version']}.json"
            if rep.is_file():
                tt = json.loads(rep.read_text()).get("metrics", {}).get("two_tower", {})
                guards = {k: tt[k] for k in GUARDS if k in tt}
        out.append({"run": p.stem, "started_at": s.get("started_at"), "finished_at": s.get("finished_at"),
                    "status": s.get("status", "unfinished"), "version": s.get("version"),
                    "headline": s.get("headline") or {}, "guards": guards or {}, "gate": s.get("gate"),
                    "live_headline": s.get("live_headline") or {}, "error": s.get("error"),
                    "data": s.get("data_volume") or {}, "canary": s.get("canary"),
                    "canary_decisions": s.get("canary_decisions") or []})
    return out


def tonight(artifacts: Path) -> dict | None:
    """The latest run, with each headline metric as candidate, live and delta."""
    runs = nights(artifacts)
    if not runs:
        return None
    last = runs[-1]
    live = last["live_headline"]
    deltas = [{"metric": k, "candidate": v, "live": live.get(k),
               "delta": None if live.get(k) is None else v - live[k]} for k, v in last["headline"].items()]
    return last | {"deltas": deltas}
