"""The nightly report as one self-contained HTML file (``ARTIFACTS/reports/<version>.html``), beside
the Markdown one: quality tonight and over the nights (plotly charts; the service's vendored
plotly.js, common/vendor/, inlined once), the
image model's confusion matrix, and the photos that look mislabeled as inline thumbnails. Opens
from a mail attachment or a file share with no network and no server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader
from PIL import Image

from bundle.runs import gate_table
from common.assets import plotly_source

TEMPLATES = Path(__file__).resolve().parent / "templates"

THUMBS = 24  # suspected mislabeled photos shown as thumbnails (the Markdown lists 20, the console all)




def _png_b64(path: Path, size: int | None = None) -> str | None:
    try:
        img = Image.open(path)
        if size:
            img = img.convert("L").resize((size, size), Image.Resampling.NEAREST)
        out = io.BytesIO()
        img.save(out, format="PNG")
        return base64.b64encode(out.getvalue()).decode()
    except OSError:
        return None


def _chart(history: list[dict], key: str, title: str) -> dict:
    """A plotly figure (traces and layout, as plotly.js takes them): one line per metric over the nights."""
    names = sorted({k for h in history for k in h.get(key, {})})
    traces = [{"x": [h["run"] for h in history], "y": [h.get(key, {}).get(n) for h in history],
               "mode": "lines+markers", "name": n} for n in names]
    return {"data": traces, "layout": {"title": {"text": title}, "height": 340,
                                       "margin": {"t": 40, "l": 50, "r": 20, "b": 40}}}


def write_html_report(path: Path, version: str, headline: dict, history: list[dict], suspects: pd.DataFrame,
                      data: Path | None, vision_dir: Path, gate: dict | None = None) -> Path:
    """``history``: one record per night, oldest first, each with ``run``, ``headline`` and ``guards``
    (bundle/runs.py), tonight last; ``suspects``: vision embed's suspected_mislabeled table."""
    before = history[-2]["headline"] if len(history) > 1 else {}
    metrics = [{"name": k, "value": v, "before": before.get(k), "delta": v - before[k] if k in before else None}
               for k, v in headline.items()]
    images = {}
    if data is not None and (data / "items.parquet").is_file():
        items = pd.read_parquet(data / "items.parquet", columns=["item_id", "image"]).dropna()
        images = dict(zip(items["item_id"].astype(str), items["image"], strict=True))
    rows = []
    for _, s in suspects.head(THUMBS).iterrows():
        img = images.get(str(s["item_id"]))
        rows.append({"item_id": s["item_id"], "category": s["category"], "predicted": s["predicted"],
                     "confidence": float(s["confidence"]), "thumb": _png_b64(data / img, 112) if img else None})
    html = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True).get_template("report.html").render(
        version=version, metrics=metrics, plotly_js=plotly_source(),
        charts=json.dumps({"history": _chart(history, "headline", "Headline metrics by night"),
                           "guards": _chart(history, "guards", "What gets recommended: coverage, Gini, novelty")}
                          ).replace("</", "<\\/"),  # inside <script>: no "</script>" can close it early
        confusion=_png_b64(vision_dir / "eval" / "confusion.png"), suspects=rows, n_suspects=len(suspects),
        gate=gate or {}, gate_rows=gate_table(gate))
    path.write_text(html)
    return path
