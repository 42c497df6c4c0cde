"""A bundle's image model (``image_model.onnx``): the CNN that classifies product photos
(temperature-calibrated) and embeds them for search by photo; its class names and preprocessing
travel in the model's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.onnx_runtime import make_session
from vision.preprocess import PreprocessSpec


class ImageModel:
    def __init__(self, path: Path, *, threads: int, device: str, max_pixels: int) -> None:
        self.session = make_session(path, threads=threads, device=device)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.class_names: list[str] = json.loads(meta["class_names"])
        self.temperature = float(meta.get("temperature", "1.0"))
        self.preprocess_spec = PreprocessSpec.from_dict(json.loads(meta["preprocess"]) | {"max_pixels": max_pixels})

    def classify(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 1, H, W) normalised pixels -> calibrated class probabilities (K,), unit embedding (E,)."""
        logits, emb = self.session.run(None, {"image": pixels.astype(np.float32)})
        return self._calibrated(logits)[0], emb[0]

    def class_probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) -> (N, K) calibrated probabilities, one ONNX call (occlusion saliency)."""
        return self._calibrated(self.session.run(None, {"image": pixels.astype(np.float32)})[0])

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        z = logits / self.temperature
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)
