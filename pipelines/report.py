"""The merchandisers' nightly report: quality tonight and over past nights, what gets recommended
and what never is, and the product photos that look mislabeled (Markdown, JSON and a
self-contained HTML file under ``ARTIFACTS/reports/``). Written by the nightly job after a
publish; reads run summaries only (bundle/runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bundle.runs import GUARDS, gate_table, nights
from pipelines.report_html import write_html_report


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def _interval(ci: list[float] | None) -> str:
    return "—" if ci is None else f"{ci[0]:+.4g} … {ci[1]:+.4g}"


def write_report(artifacts: Path, version: str, metrics: dict, vision_dir: Path,
                 data: Path | None = None, gate: dict | None = None) -> Path:
    """Merchandisers' page for the night: quality now and over past nights, what the model
    recommends and what it never does, and the product photos that look mislabeled. Returns the
    Markdown file; the HTML one (photos from ``data``) is beside it."""
    reports = artifacts / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    h = metrics["headline"]
    tt = metrics["two_tower"]
    # past nights with metrics; a re-run of tonight is tonight
    nights_ = [n for n in nights(artifacts) if n["headline"] and n["version"] != version]
    nights_.append({"run": "tonight", "version": version, "status": "published", "headline": h,
                    "guards": {k: tt[k] for k in GUARDS if k in tt}})
    history = [{"run": n["run"], "version": n["version"], "status": n["status"]} | n["headline"] for n in nights_]
    sus_path = vision_dir / "embed" / "suspected_mislabeled.csv"
    sus = pd.read_csv(sus_path) if sus_path.is_file() else pd.DataFrame()
    lines = [f"# Vitrine nightly report — bundle {version}", "",
             "## Quality (test window: each shopper's latest events)", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in h.items()]
    rows = gate_table(gate)
    if rows:
        lines += ["", f"## Tonight's gate ({gate.get('method')}): {'passed' if gate.get('passed') else 'refused'}", "",
                  gate.get("reason", ""), "", "| check | candidate | live | difference | interval | bound | refused |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['what']} | {_num(r['candidate'])} | {_num(r['live'])} | {_num(r['difference'])} | "
                  f"{_interval(r['interval'])} | {_num(r['bound'])} | {'yes' if r['refused'] else 'no'} |"
                  for r in rows]
    lines += ["", "## Over past nights", "", "| run | version | status | " + " | ".join(h) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in h) + " |"]
    for r in history:
        lines.append(f"| {r['run']} | {r.get('version')} | {r.get('status')} | " +
                     " | ".join(f"{r.get(k, float('nan')):.4f}" for k in h) + " |")
    lines += ["", "## What gets recommended", "",
              f"- catalog coverage of the two-tower's top-10 lists for test shoppers: {tt.get('coverage', np.nan):.1%} "
              f"(so {1 - tt.get('coverage', np.nan):.1%} of the catalog is never recommended to them)",
              f"- Gini of recommendation counts: {tt.get('gini', np.nan):.3f} (0 = even, 1 = one item gets all)",
              f"- novelty (mean self-information of recommended items): {tt.get('novelty', np.nan):.2f} bits", "",
              f"## Product photos that look mislabeled ({len(sus)} items; the CNN is confident in another "
              "category)", ""]
    if len(sus):
        lines.append("| " + " | ".join(sus.columns[:6]) + " |")
        lines.append("| " + " | ".join("---" for _ in sus.columns[:6]) + " |")
        for _, r in sus.head(20).iterrows():
            lines.append("| " + " | ".join(str(r[c]) for c in sus.columns[:6]) + " |")
    (reports / f"{version}.json").write_text(json.dumps({"version": version, "metrics": metrics,
                                                         "history": history}, indent=2, default=str))
    path = reports / f"{version}.md"
    path.write_text("\n".join(lines) + "\n")
    write_html_report(reports / f"{version}.html", version, h, nights_, sus, data, vision_dir, gate)
    return path
