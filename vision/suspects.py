"""What "this photo looks mislabeled" means, in one place and torch-free: the image model gives
another category at least ``MIN_CONFIDENCE`` and the catalog's own at most ``MAX_P_CATEGORY``.
Used offline (vision/embed.py: the nightly's suspect list) and online (bundle/photo_predictions.py:
the console's gallery)."""

from __future__ import annotations

import numpy as np

MIN_CONFIDENCE = 0.9
MAX_P_CATEGORY = 0.05


def is_suspect(disagrees: np.ndarray, confidence: np.ndarray, p_category: np.ndarray,
               min_confidence: float = MIN_CONFIDENCE, max_p_category: float = MAX_P_CATEGORY) -> np.ndarray:
    """(N,) bool. ``disagrees``: the prediction is another category than the catalog's (and there is
    a photo); ``p_category``: the catalog category's probability, NaN when it is not a class (0)."""
    return disagrees & (confidence >= min_confidence) & (np.nan_to_num(p_category, nan=0.0) <= max_p_category)
