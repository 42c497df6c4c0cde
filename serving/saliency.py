"""Where the image model looks: occlusion saliency (Zeiler & Fergus, 2014) through ONNX Runtime.

Gradients would need torch or a gradient graph in the ONNX file; occlusion needs neither: grey
out one patch at a time (all patches in one batch, one ORT call), and a patch's saliency is how
much the predicted class's probability drops without it. Patches overlap by ``overlap`` of their
side (each pixel's value is the mean over the patches that cover it)."""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from vision.preprocess import preprocess


def occlusion_saliency(classify_batch, pixels: np.ndarray, target: int, patches: int = 7,
                       overlap: float = 0.0) -> np.ndarray:
    """(H, W) in [0, 1] for one preprocessed image ``pixels`` (1, C, H, W).

    ``classify_batch``: (N, C, H, W) -> (N, K) calibrated probabilities. Patch side H/``patches``
    (``patches``² model inputs without overlap: 49 at the default, one ORT call of a few tens of ms
    on one core; 0.5 overlap gives a smoother map for 3.5x the inputs). The occluded value is 0,
    the dataset mean after normalisation."""
    _, C, H, W = pixels.shape
    ph, pw = max(1, H // patches), max(1, W // patches)
    sh, sw = max(1, round(ph * (1 - overlap))), max(1, round(pw * (1 - overlap)))
    boxes = [(y, x) for y in range(0, H - ph + 1, sh) for x in range(0, W - pw + 1, sw)]
    batch = np.repeat(pixels.astype(np.float32), len(boxes), 0)  # (N, C, H, W)
    for i, (y, x) in enumerate(boxes):
        batch[i, :, y : y + ph, x : x + pw] = 0.0
    base = float(classify_batch(pixels.astype(np.float32))[0, target])
    drop = np.maximum(base - classify_batch(batch)[:, target], 0.0)  # (N,)
    heat, hits = np.zeros((H, W)), np.zeros((H, W))
    for d, (y, x) in zip(drop.tolist(), boxes, strict=True):
        heat[y : y + ph, x : x + pw] += d
        hits[y : y + ph, x : x + pw] += 1
    heat = heat / np.maximum(hits, 1)
    top = heat.max()
    return (heat / top if top > 0 else heat).astype(np.float32)


def overlay_png(photo: bytes, heat: np.ndarray, size: int = 168) -> bytes:
    """The photo in grey with the saliency map in red on top, as a PNG of ``size`` pixels a side."""
    grey = Image.open(io.BytesIO(photo)).convert("L").resize((size, size), Image.Resampling.BILINEAR)
    h = Image.fromarray((heat * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    g, a = np.asarray(grey, np.float32), np.asarray(h, np.float32) / 255.0
    rgb = np.stack([g * (1 - a) + 255 * a, g * (1 - a), g * (1 - a)], -1)  # (size, size, 3)
    out = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


_OVERLAYS: dict[tuple[str, str], bytes] = {}  # (bundle version, item id) -> PNG: catalog photos never change
_LOCK = threading.Lock()


def catalog_overlay(b, item_id: str) -> bytes:
    """``overlay_png`` of a catalog product's photo for the category the model predicts, cached per
    bundle version (the console's gallery shows 48 at a time; the exposure warm-up fills them).
    LookupError: no such product or no catalog photo; vision.preprocess.ImageError: unreadable."""
    key = (b.version, item_id)
    png = _OVERLAYS.get(key)
    if png is not None:
        return png
    row = b.catalog.row_of.get(item_id)
    path = b.photo_path(row) if row is not None else None  # the dataset's photos only, not live uploads
    if path is None:
        raise LookupError(f"item {item_id!r} has no catalog photo")
    data = path.read_bytes()
    model = b.require_images()
    pixels = preprocess(data, model.preprocess_spec)
    heat = occlusion_saliency(model.class_probabilities, pixels, int(model.classify(pixels)[0].argmax()))
    png = overlay_png(data, heat)
    with _LOCK:
        if len(_OVERLAYS) >= 512:  # a few galleries' worth; older bundles' entries go with them
            _OVERLAYS.clear()
        _OVERLAYS[key] = png
    return png
