"""The image classifier's verdict on every catalog photo, carried in the bundle as
``image_predictions.npz`` (written by pipelines/assemble.py from `vitrine vision embed`'s
``image_predictions.parquet``), and which photos look mislabeled.

    predicted   (N,) int16    the CNN's category (index into class_names), -1: no photo
    confidence  (N,) float32  its calibrated probability
    p_category  (N,) float32  the probability of the catalog's own category (NaN: not a class)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.mapped import open_npz
from vision.suspects import is_suspect


@dataclass
class PhotoPredictions:
    predicted: np.ndarray
    confidence: np.ndarray
    p_category: np.ndarray

    @staticmethod
    def from_table(pred: pd.DataFrame, item_ids: pd.Series, class_names: list[str]) -> PhotoPredictions:
        """Aligned to ``item_ids`` (the bundle's catalog order) from vision embed's table."""
        p = pred.set_index("item_id").reindex(pd.Index(item_ids))
        code = p["predicted"].map({c: i for i, c in enumerate(class_names)})
        return PhotoPredictions(code.fillna(-1).to_numpy(np.int16),
                                p["confidence"].fillna(0).to_numpy(np.float32),
                                p["p_category"].to_numpy(np.float32))

    def save(self, path: Path) -> None:
        np.savez(path, predicted=self.predicted, confidence=self.confidence, p_category=self.p_category)

    @staticmethod
    def load(path: Path, mmap: bool = True) -> PhotoPredictions:
        z = open_npz(path, mmap=mmap)
        return PhotoPredictions(z["predicted"], z["confidence"], z["p_category"])

    def append(self) -> None:
        """A product added live: its prediction is in ``LoadedBundle.predicted``, not here."""
        self.predicted = np.append(self.predicted, np.int16(-1))
        self.confidence = np.append(self.confidence, np.float32(0))
        self.p_category = np.append(self.p_category, np.float32(np.nan))


def suspect_rows(p: PhotoPredictions, catalog_code: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Live rows whose photo the CNN confidently puts in another category than the catalog does
    (vision/suspects.py). ``catalog_code``: each row's catalog category as a class index (-1: none)."""
    n = len(catalog_code)
    pred = p.predicted[:n].astype(np.int64)
    disagrees = (pred >= 0) & (pred != catalog_code) & live[:n]
    return np.flatnonzero(is_suspect(disagrees, p.confidence[:n], p.p_category[:n]))
