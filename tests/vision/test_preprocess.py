import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vision.preprocess import ImageError, PreprocessSpec, decode, preprocess, to_pixels


def _png(a: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, "PNG")
    return buf.getvalue()


def test_serving_module_does_not_import_torch() -> None:
    code = "import sys, vision.preprocess, vision.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_training_and_serving_build_the_same_tensor(tiny_shop: Path) -> None:
    from vision.data import load_image_set, to_tensor

    spec = PreprocessSpec()
    data = load_image_set(tiny_shop, spec)
    items = pd.read_parquet(tiny_shop / "items.parquet").set_index("item_id")
    for k in (0, 5, len(data.item_ids) - 1):
        train_x = to_tensor(data.pixels[k : k + 1], spec).numpy()  # training path (cached pixels)
        serve_x = preprocess((tiny_shop / items.loc[data.item_ids[k], "image"]).read_bytes(), spec)  # upload path
        np.testing.assert_array_equal(train_x, serve_x)
    assert serve_x.shape == (1, 1, 28, 28) and serve_x.dtype == np.float32


def test_photo_on_white_rgb_jpeg_rotated_is_normalised_like_a_catalog_image() -> None:
    # A dark "product" on a white background, 200x120, RGB JPEG, stored rotated with EXIF orientation 6.
    a = np.full((120, 200, 3), 255, np.uint8)
    a[30:90, 40:160] = 20
    img = Image.fromarray(a).rotate(90, expand=True)  # stored as 120 wide x 200 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 270 on display -> back to 200x120 landscape
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    px = to_pixels(decode(buf.getvalue()))
    assert px.shape == (28, 28)
    assert px[0].mean() < 30 and px[14, 14] > 200  # inverted: background dark, product light
    # landscape kept after EXIF transpose: the product band is wider than tall
    rows, cols = np.where(px > 128)
    assert (cols.max() - cols.min()) > (rows.max() - rows.min())


def test_rgba_transparent_background_counts_as_white() -> None:
    a = np.zeros((40, 40, 4), np.uint8)
    a[10:30, 10:30] = (0, 0, 0, 255)  # opaque black square, transparent elsewhere
    px = to_pixels(decode(_png(a, "RGBA")))
    assert px[0, 0] < 10 and px[14, 14] > 245


def test_bad_inputs_are_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="not a readable image"):
        decode(b"definitely not an image")
    big = _png(np.zeros((600, 600), np.uint8))
    with pytest.raises(ImageError, match="limit"):
        decode(big, PreprocessSpec(max_pixels=100_000))
    with pytest.raises(ImageError):
        decode(_png(np.zeros((50, 50), np.uint8))[:60])  # truncated


def test_webp_and_gif_decode() -> None:
    a = (np.arange(32 * 32) % 256).astype(np.uint8).reshape(32, 32)
    for fmt in ("WEBP", "GIF"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, fmt)
        assert preprocess(buf.getvalue()).shape == (1, 1, 28, 28)
