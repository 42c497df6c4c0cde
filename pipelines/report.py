"""The merchandisers' nightly report: quality tonight and over past nights, what gets recommended
and what never is, and the product photos that look mislabeled (Markdown + JSON under
``ARTIFACTS/reports/``). Written by the nightly job after a publish; reads run summaries only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_report(artifacts: Path, version: str, metrics: dict, vision_dir: Path) -> Path:
    """Merchandisers' page for the night: quality now and over past nights, what the model
    recommends and what it never does, and the product photos that look mislabeled."""
    reports = artifacts / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    history = []
    for p in sorted((artifacts / "runs").glob("*.json")):
        s = json.loads(p.read_text())
        if "headline" in s and s.get("version") != version:  # a re-run of tonight is tonight
            history.append({"run": p.stem, "version": s.get("version"), "status": s.get("status")} | s["headline"])
    h = metrics["headline"]
    history.append({"run": "tonight", "version": version, "status": "published"} | h)
    tt = metrics["two_tower"]
    sus_path = vision_dir / "embed" / "suspected_mislabeled.csv"
    sus = pd.read_csv(sus_path) if sus_path.is_file() else pd.DataFrame()
    lines = [f"# Vitrine nightly report — bundle {version}", "",
             "## Quality (test window: each shopper's latest events)", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in h.items()]
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
    return path
