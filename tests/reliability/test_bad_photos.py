"""One bad product photo: reported by name at import, survived by every later step."""

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.validate import validate
from vision.data import catalog_pixels
from vision.preprocess import PreprocessSpec


def _photos(root: Path, n: int = 6) -> pd.DataFrame:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), (20 * i, 100, 200)).save(buf, format="JPEG")
        (root / f"p{i}.jpg").write_bytes(buf.getvalue())
    return pd.DataFrame({"item_id": [f"s{i}" for i in range(n)], "category": "hats", "price": 5.0,
                         "image": [f"p{i}.jpg" for i in range(n)], "created_at": "2026-01-01T00:00:00Z"})


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


def test_import_rejects_an_unreadable_photo_by_name_and_keeps_the_rest(tmp_path: Path) -> None:
    items = _photos(tmp_path)
    _truncate(tmp_path / "p2.jpg")
    (tmp_path / "p4.jpg").write_bytes(b"<html>not a photo</html>")
    events = pd.DataFrame({"user_id": ["u"] * 6, "item_id": items["item_id"], "event": "view",
                           "ts": pd.date_range("2026-01-02", periods=6, freq="h", tz="UTC")})
    v = validate(items, None, events, image_root=tmp_path)
    assert sorted(v.items["item_id"]) == ["s0", "s1", "s3", "s5"]
    rej = v.rejected[v.rejected["table"] == "items"]
    assert len(rej) == 2
    assert all("unreadable image" in r for r in rej["reason"])
    assert any("p2.jpg" in r for r in rej["reason"]) and any("p4.jpg" in r for r in rej["reason"])


def test_a_photo_that_goes_bad_after_import_is_left_out_not_fatal(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    items = _photos(tmp_path / "shop")
    _truncate(tmp_path / "shop" / "p1.jpg")
    (tmp_path / "shop" / "p3.jpg").unlink()
    with caplog.at_level(logging.WARNING):
        pixels, ok = catalog_pixels(tmp_path / "shop", items, PreprocessSpec())
    assert ok.tolist() == [True, False, True, False, True, True]
    assert pixels.shape == (6, 28, 28) and pixels[ok].any(axis=(1, 2)).all()
    assert "p1.jpg" in caplog.text and "p3.jpg" in caplog.text
    again, ok2 = catalog_pixels(tmp_path / "shop", items, PreprocessSpec())  # from the cache
    np.testing.assert_array_equal(again, pixels)
    np.testing.assert_array_equal(ok2, ok)
