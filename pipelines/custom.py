"""A user's own catalog: items/users/events as CSV or Parquet plus an image folder."""

from __future__ import annotations

import csv
import gzip
import logging
import shutil
from pathlib import Path

import pandas as pd

from pipelines.validate import Validated, validate, write_validated

log = logging.getLogger(__name__)


def ingest(items: pd.DataFrame, users: pd.DataFrame | None, events: pd.DataFrame, out: Path,
           image_root: Path | None, max_bad_share: float, *, copy: bool = False) -> Validated:
    """The one ingest path of every importer: validate raw frames, (optionally) copy the images that
    live outside ``out`` under it, write the canonical tables and ``rejected.csv``. Raises
    ``DataValidationError`` (nothing written but the rejects) when a table's bad share is too high."""
    v = validate(items, users, events, image_root=image_root, pixel_cache=out / "cache")
    if copy and image_root is not None:
        v.items = copy_images(v.items, image_root, out)
    write_validated(v, out, max_bad_share)
    return v


def read_any(path: Path) -> pd.DataFrame:
    """CSV (delimiter sniffed among ',', ';', tab, '|'; every value read as text) or Parquet, by extension."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = "".join(path.suffixes).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        return pd.read_parquet(path)
    if suffix.endswith((".csv", ".tsv", ".txt", ".csv.gz")):
        return pd.read_csv(path, sep=_delimiter(path), dtype=str, keep_default_na=True)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")


def _delimiter(path: Path) -> str:
    """',', ';', tab or '|', sniffed from the first lines (a one-column file: ',')."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        sample = f.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def copy_images(items: pd.DataFrame, image_root: Path, out: Path) -> pd.DataFrame:
    """Copy each valid item's image under ``out/images`` and point ``image`` there."""
    items = items.copy()
    has = items["image"].notna()
    new_paths = []
    for rel in items.loc[has, "image"]:
        dest_rel = f"images/{rel}"
        dest = out / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image_root / rel, dest)
        new_paths.append(dest_rel)
    items.loc[has, "image"] = new_paths
    log.info("copied %d images into %s", len(new_paths), out / "images")
    return items
