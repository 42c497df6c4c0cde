"""The nightly job's run summaries (``ARTIFACTS/runs/*.json``, pipelines/nightly.py) as the
merchandisers read them: tonight's card and every model's metrics night by night. Read by the
console (serving/routers/analytics.py) and the nightly report (pipelines/report.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

GUARDS = ("coverage", "gini", "novelty")  # the two-tower's guard metrics (what gets recommended)


def nights(artifacts: Path) -> list[dict]:
    """One record per nightly run, oldest first: status, version, headline metrics, guard metrics,
    the gate's verdict and the live bundle's headline it was compared with. Unreadable files skipped."""
    out = []
    for p in sorted((artifacts / "runs").glob("*.json")):
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
                    "data": s.get("data_volume") or {}})
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
