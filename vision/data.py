"""Catalog images as tensors: a decoded-pixel cache, the train/valid/test split, batch augmentation."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vision.pixel_cache import decode_cached
from vision.preprocess import PreprocessSpec, normalize

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    pixels: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64, index into class_names
    item_ids: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) "train" | "valid" | "test"
    class_names: tuple[str, ...]

    def subset(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.split == part
        return self.pixels[m], self.labels[m]


def catalog_pixels(data_dir: Path, items: pd.DataFrame, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode every item image once (same code as serving) and cache the uint8 array on disk; also
    (N,) bool: which photos decoded. A photo that went bad or missing after import is logged with its
    file and reason and left out by the callers — one bad file never stops a run.

    The cache (``vision/pixel_cache.py``, filled at import) is keyed by each photo's bytes and the
    preprocessing spec, so a photo replaced under the same name is decoded again; it is the one thing
    written under ``data_dir``."""
    paths = [data_dir / p for p in items["image"].astype(str)]
    pixels, errors = decode_cached(paths, data_dir / "cache", spec, progress=True)
    ok = np.array([e is None for e in errors], dtype=bool)
    for path, e in zip(paths, errors, strict=True):
        if e is not None:
            log.warning("photo %s left out: %s", path, e)
    if not ok.all():
        log.warning("%d of %d photos could not be decoded (listed above); their items go on without one",
                    (~ok).sum(), len(ok))
    return pixels, ok


def load_image_set(data_dir: Path, spec: PreprocessSpec, *, valid_share: float = 1 / 12, seed: int = 0,
                   max_items: int | None = None) -> ImageSet:
    """Items with an image, labelled by category.

    Test = the official Fashion-MNIST test images when the catalog records them (``fmnist_split``),
    otherwise a hash-chosen 1/7 of items. Validation (early stopping, calibration) is a seeded
    share of the rest: the test set is never used for either.
    """
    items = pd.read_parquet(data_dir / "items.parquet")
    items = items[items["image"].notna()].reset_index(drop=True)
    if max_items is not None and len(items) > max_items:
        items = items.sample(max_items, random_state=seed).sort_index().reset_index(drop=True)
    classes = tuple(sorted(items["category"].unique()))
    labels = items["category"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    if "fmnist_split" in items:
        is_test = (items["fmnist_split"] == "test").to_numpy()
    else:
        h = items["item_id"].map(lambda s: int(hashlib.md5(s.encode()).hexdigest()[:8], 16))
        is_test = (h % 7 == 0).to_numpy()
    rng = np.random.default_rng(seed)
    is_valid = ~is_test & (rng.random(len(items)) < valid_share)
    split = np.where(is_test, "test", np.where(is_valid, "valid", "train"))
    pixels, ok = catalog_pixels(data_dir, items, spec)
    return ImageSet(pixels[ok], labels[ok], items["item_id"].to_numpy()[ok], split[ok], classes)


def to_tensor(pixels: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 (N, H, W) -> normalised float (N, 1, H, W), via the shared numpy normalisation."""
    return torch.from_numpy(normalize(pixels, spec))


def augment(x: torch.Tensor, g: torch.Generator, *, pad: int = 2, flip: bool = True,
            erase_p: float = 0.0, fill: float = 0.0) -> torch.Tensor:
    """Random crop with padding, horizontal flip, random erasing — on a whole batch at once.

    x: (B, C, H, W) normalised; ``fill`` is the normalised background value. Returns a new tensor.
    """
    B, C, H, W = x.shape
    dev = x.device  # every draw is made where the batch lives, from ``g`` (on the same device): no copies
    kw = {"generator": g, "device": dev}
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad), value=fill)  # (B, C, H+2p, W+2p)
        di = torch.randint(0, 2 * pad + 1, (B,), **kw)
        dj = torch.randint(0, 2 * pad + 1, (B,), **kw)
        rows = (di[:, None] + torch.arange(H, device=dev))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dj[:, None] + torch.arange(W, device=dev))[:, None, None, :]  # (B, 1, 1, W)
        x = xp[torch.arange(B, device=dev)[:, None, None, None], torch.arange(C, device=dev)[None, :, None, None],
               rows, cols]
    if flip:
        m = (torch.rand(B, **kw) < 0.5)[:, None, None, None]
        x = torch.where(m, x.flip(3), x)
    if erase_p > 0:
        # One rectangle of 2-25 % of the area, aspect ratio 0.3-3.3, in a share erase_p of images.
        area = torch.empty(B, device=dev).uniform_(0.02, 0.25, generator=g) * H * W
        ratio = torch.exp(torch.empty(B, device=dev).uniform_(np.log(0.3), np.log(3.3), generator=g))
        eh = (area * ratio).sqrt().clamp(1, H).long()
        ew = (area / ratio).sqrt().clamp(1, W).long()
        top = (torch.rand(B, **kw) * (H - eh + 1)).long()
        left = (torch.rand(B, **kw) * (W - ew + 1)).long()
        on = torch.rand(B, **kw) < erase_p
        r = torch.arange(H, device=dev)[None, :, None]
        c = torch.arange(W, device=dev)[None, None, :]
        box = ((r >= top[:, None, None]) & (r < (top + eh)[:, None, None]) &
               (c >= left[:, None, None]) & (c < (left + ew)[:, None, None]) & on[:, None, None])
        x = x.masked_fill(box[:, None], fill)
    return x
