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

# Suspect: the CNN is this sure of another category, and gives the catalog's at most this much
# (the same thresholds as vision/embed.py::suspected_mislabeled, which lists them offline).
MIN_CONFIDENCE = 0.9
MAX_P_CATEGORY = 0.05


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


def suspect_rows(p: PhotoPredictions, catalog_code: np.ndarray, live: np.ndarray,
                 min_confidence: float = MIN_CONFIDENCE, max_p_category: float = MAX_P_CATEGORY) -> np.ndarray:
    """Live rows whose photo the CNN confidently puts in another category than the catalog does.
    ``catalog_code``: each row's catalog category as a class index (-1: not one of the classes)."""
    n = len(catalog_code)
    pred = p.predicted[:n].astype(np.int64)
    other = (pred >= 0) & (pred != catalog_code) & live[:n]
    sure = p.confidence[:n] >= min_confidence
    low = np.nan_to_num(p.p_category[:n], nan=0.0) <= max_p_category
    return np.flatnonzero(other & sure & low)
