"""Image preprocessing shared by training and serving. numpy + Pillow only: serving imports this.

Any common image (PNG, JPEG, WebP, GIF; grayscale, RGB, RGBA, palette; any size; EXIF-rotated)
becomes what the CNN was trained on: a grayscale, square, centred product on a dark background,
``size`` × ``size`` pixels, normalised with the training mean and std. Catalog photos on a light
background (the usual shop photo) are inverted so the product is light on dark, like
Fashion-MNIST; the decision looks only at the border pixels, so it is the same in both paths.
"""

from __future__ import annotations

import io
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

# Decompression-bomb guard: Pillow raises past 2x this; we refuse anything above it before decoding.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
MAX_SIDE = 12_000  # a photo wider or taller than this is refused before decoding
MAX_ASPECT = 20.0  # and one whose sides differ more than this (a 30,000 x 1 PNG is 110 bytes)
SHRINK_ABOVE = 1024  # larger photos are shrunk (aspect kept) before padding to a square


class ImageError(ValueError):
    """The bytes are not an image we accept (unreadable, too large, empty)."""


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 28
    mean: float = 0.2860  # Fashion-MNIST training pixels, /255
    std: float = 0.3530
    invert_light_background: bool = True
    max_pixels: int = MAX_PIXELS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")  # what the service decodes from a stranger: Pillow tries no other decoder


def decode(data: bytes | Path | str, spec: PreprocessSpec = PreprocessSpec(),
           formats: tuple[str, ...] | None = None) -> Image.Image:
    """Open and fully decode an image, refusing oversized or unreadable input with :class:`ImageError`
    (every error Pillow raises on a malformed file becomes one). ``formats``: only these decoders
    (uploads: ``UPLOAD_FORMATS``); None: every format Pillow reads (a shop's own catalog)."""
    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=formats)
        w, h = img.size  # header only: decide before decoding pixels
        if w * h > spec.max_pixels:
            raise ImageError(f"image is {w}x{h} = {w * h:,} pixels; the limit is {spec.max_pixels:,}")
        if w == 0 or h == 0:
            raise ImageError("image has no pixels")
        if max(w, h) > MAX_SIDE:
            raise ImageError(f"image is {w}x{h}; the longest side may be {MAX_SIDE:,} pixels")
        if max(w, h) / min(w, h) > MAX_ASPECT:
            raise ImageError(f"image is {w}x{h}; its sides may differ at most {MAX_ASPECT:g}x")
        img.load()
        return ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as e:  # Pillow's own guard fired first (far past MAX_PIXELS)
        raise ImageError(f"image has too many pixels; the limit is {spec.max_pixels:,} ({e})") from e
    except UnidentifiedImageError as e:
        allowed = f" ({', '.join(formats)} only)" if formats else ""
        raise ImageError(f"not a readable image{allowed}") from e
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, struct.error) as e:
        # a malformed file (a bad chunk length, an EXIF block that does not parse, a mode with no decoder)
        raise ImageError(f"not a readable image ({e.__class__.__name__}: {str(e)[:200]})") from e


def to_pixels(img: Image.Image, spec: PreprocessSpec = PreprocessSpec()) -> np.ndarray:
    """Decoded image -> (size, size) uint8, product light on dark, centred and padded to square."""
    if max(img.size) > SHRINK_ABOVE:  # shrink first: padding a large thin image to a square costs its side²
        scale = SHRINK_ABOVE / max(img.size)
        if img.mode not in ("L", "LA", "RGB", "RGBA"):  # palette, 1-bit, 16-bit: resample in a plain mode
            img = img.convert("RGBA" if img.mode in ("P", "PA") else "L")
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))),
                         Image.Resampling.BILINEAR)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # transparent -> white background
    gray = np.asarray(img.convert("L"), dtype=np.uint8)
    if spec.invert_light_background:
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        if border.mean() > 127:
            gray = 255 - gray
    h, w = gray.shape
    if h != w:  # pad to square with the background (dark after the inversion above)
        side = max(h, w)
        canvas = np.zeros((side, side), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        canvas[top : top + h, left : left + w] = gray
        gray = canvas
    if gray.shape[0] != spec.size:
        gray = np.asarray(Image.fromarray(gray).resize((spec.size, spec.size), Image.Resampling.BILINEAR,
                                                       reducing_gap=None))
    return np.ascontiguousarray(gray)


def normalize(pixels: np.ndarray, spec: PreprocessSpec = PreprocessSpec()) -> np.ndarray:
    """uint8 (..., H, W) -> float32 (..., 1, H, W), standardised. The one normalisation in Vitrine."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(spec.mean)) / np.float32(spec.std)
    return x[..., None, :, :]


def preprocess(data: bytes | Path | str, spec: PreprocessSpec = PreprocessSpec(),
               formats: tuple[str, ...] | None = None) -> np.ndarray:
    """File or bytes -> model input (1, 1, size, size) float32; :class:`ImageError` for anything unreadable."""
    img = decode(data, spec, formats)
    try:
        pixels = to_pixels(img, spec)
    except (OSError, ValueError, TypeError) as e:  # a mode Pillow cannot convert (LAB, CMYK oddities...)
        raise ImageError(f"not a readable image ({e.__class__.__name__}: {str(e)[:200]})") from e
    return normalize(pixels, spec)[None]


def _one(path: Path, spec: PreprocessSpec) -> tuple[np.ndarray | None, str | None]:
    try:
        return to_pixels(decode(path, spec), spec), None
    except ImageError as e:
        return None, str(e)
    except (OSError, ValueError) as e:  # gone, unreadable, or a mode Pillow cannot convert
        return None, f"not a readable image ({e.__class__.__name__}: {e})"


def load_pixels(paths: list[Path], spec: PreprocessSpec = PreprocessSpec(), *, workers: int | None = None,
                progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
    """Decode many catalog images -> (N, size, size) uint8 and, per image, None or why it could not be
    decoded (its slot stays black). Threads: Pillow's decoders release the GIL."""
    out = np.zeros((len(paths), spec.size, spec.size), np.uint8)
    errors: list[str | None] = [None] * len(paths)
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        done = pool.map(lambda p: _one(p, spec), paths, chunksize=64)
        for i, (px, err) in enumerate(tqdm(done, total=len(paths), desc="decoding photos", disable=not progress,
                                           mininterval=2.0)):
            if err is None:
                out[i] = px
            else:
                errors[i] = err
    return out, errors
