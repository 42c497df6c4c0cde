"""Catalog inference: item-aligned image embeddings and category predictions, and the
"suspected mislabeled" list for merchandisers (the photo confidently says another category)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.torch_runtime import pick_device
from vision.data import catalog_pixels, to_tensor
from vision.metrics import softmax
from vision.preprocess import PreprocessSpec
from vision.suspects import MAX_P_CATEGORY, MIN_CONFIDENCE, is_suspect
from vision.train import load_model, predict

log = logging.getLogger(__name__)


def embed_catalog(checkpoint: Path, data_dir: Path, out_dir: Path, *, temperature: float = 1.0,
                  batch: int = 1024) -> pd.DataFrame:
    """Write ``image_vectors.npy`` (N, E) float32 and ``image_predictions.parquet``, both in the row
    order of ``items.parquet``. Items without an image get a zero vector and ``has_image=False``."""
    device = pick_device()
    model, ck = load_model(checkpoint, device)
    model.to(device).to(memory_format=torch.channels_last)
    spec = PreprocessSpec.from_dict(ck["preprocess"])
    names = list(ck["model_config"]["class_names"])
    items = pd.read_parquet(data_dir / "items.parquet", columns=["item_id", "category", "image"])
    has = items["image"].notna().to_numpy(copy=True)  # written below; arrow-backed columns can be read-only
    pixels, ok = catalog_pixels(data_dir, items[has], spec)
    has[np.flatnonzero(has)[~ok]] = False  # a photo that no longer decodes: the item goes on without one
    logits, emb = predict(model, to_tensor(pixels[ok], spec), device, batch)
    probs = softmax(logits.numpy(), temperature)
    vectors = np.zeros((len(items), emb.shape[1]), np.float32)
    vectors[has] = emb.numpy()
    pred = np.full(len(items), None, dtype=object)
    pred[has] = np.asarray(names)[probs.argmax(1)]
    conf = np.full(len(items), np.nan)
    conf[has] = probs.max(1)
    p_cat = np.full(len(items), np.nan)
    col = items.loc[has, "category"].map({c: i for i, c in enumerate(names)})
    known = col.notna().to_numpy()
    rows = np.flatnonzero(has)[known]
    p_cat[rows] = probs[np.flatnonzero(known), col[known].astype(int).to_numpy()]
    out = pd.DataFrame({"item_id": items["item_id"], "category": items["category"], "has_image": has,
                        "predicted": pred, "confidence": conf, "p_category": p_cat})
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "image_vectors.npy", vectors)
    out.to_parquet(out_dir / "image_predictions.parquet", index=False)
    agree = (out.loc[has, "predicted"] == out.loc[has, "category"]).mean()
    log.info("embedded %d images (%d-d); prediction agrees with catalog category for %.1f%%",
             has.sum(), vectors.shape[1], 100 * agree)
    return out


def suspected_mislabeled(predictions: pd.DataFrame, *, min_confidence: float = MIN_CONFIDENCE,
                         max_p_category: float = MAX_P_CATEGORY) -> pd.DataFrame:
    """Items whose photo is confidently another category than the catalog says (vision/suspects.py),
    most confident first."""
    p = predictions
    disagrees = (p["has_image"] & (p["predicted"] != p["category"])).to_numpy(bool)
    m = is_suspect(disagrees, p["confidence"].to_numpy(np.float64), p["p_category"].to_numpy(np.float64),
                   min_confidence, max_p_category)
    return p[m].sort_values(["confidence", "item_id"], ascending=[False, True]).reset_index(drop=True)
