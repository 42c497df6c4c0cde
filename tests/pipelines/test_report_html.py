"""The nightly HTML report stands alone: charts, tables and photos inline."""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.report_html import write_html_report


def test_html_report_inlines_charts_and_thumbnails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(data / "images" / "a.png")
    pd.DataFrame({"item_id": ["a", "b"], "image": ["images/a.png", None]}).to_parquet(data / "items.parquet")
    suspects = pd.DataFrame({"item_id": ["a", "b"], "category": ["Bag", "Coat"], "predicted": ["Coat", "Bag"],
                             "confidence": [0.97, 0.93]})
    history = [{"run": "r1", "headline": {"ndcg": 0.10}, "guards": {"gini": 0.5}},
               {"run": "tonight", "headline": {"ndcg": 0.12}, "guards": {"gini": 0.4}}]
    out = write_html_report(tmp_path / "r.html", "v2", {"ndcg": 0.12}, history, suspects, data, tmp_path / "vision")
    html = out.read_text()
    assert html.count('<img alt="a" src="data:image/png;base64,') == 1  # a's photo inline
    assert '<img alt="b"' not in html and "confusion matrix" not in html  # b has no photo; no confusion.png here
    assert "+0.0200" in html and "model: Coat (97 %)" in html and "model: Bag (93 %)" in html
    assert '<div id="history">' in html and '"text": "Headline metrics by night"' in html
    assert "plotly.js (cartesian - minified)" in html and "<script src=" not in html  # the library inline
