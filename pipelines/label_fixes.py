"""Merchandisers' accepted label fixes applied to the next night's data: a product whose photo
they agreed is another category (bundle/labels.py, written by the console's "photos to check") takes that category
in ``DATA/items.parquet`` before the nightly job validates and fingerprints the data, so every
model trains on the corrected catalog and the next bundle carries it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from bundle.labels import label_decisions
from pipelines.settings import get_settings

log = logging.getLogger(__name__)


def apply_label_fixes(data: Path, artifacts: Path) -> int:
    """Rewrite ``items.parquet`` (atomically) with every accepted decision whose category differs
    from the catalog's; returns how many products changed (0: the file is left untouched)."""
    accepted = {i: d["category"] for i, d in label_decisions(artifacts, get_settings().state_url).items()
                if d["decision"] == "accept" and d.get("category")}
    path = data / "items.parquet"
    if not accepted or not path.is_file():
        return 0
    items = pd.read_parquet(path)
    new = items["item_id"].astype(str).map(accepted)
    change = new.notna() & (new != items["category"])
    if not change.any():
        return 0
    items.loc[change, "category"] = new[change]
    tmp = path.with_suffix(".parquet.tmp")
    items.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    log.info("applied %d accepted label fixes to %s", int(change.sum()), path)
    return int(change.sum())
