"""Photos decoded once, found again by their content (vision/pixel_cache.py)."""

from pathlib import Path

import numpy as np
from PIL import Image

import vision.pixel_cache as pc
from vision.preprocess import load_pixels


def _photos(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i, ext in enumerate(["png", "jpg", "webp"]):
        p = root / "a" / "b" / f"p{i}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40 + i, 30), np.uint8)).convert("RGB").save(p)
        paths.append(p)
    (root / "broken.jpg").write_text("<html>")
    return [*paths, root / "broken.jpg", root / "missing.png"]


def test_each_photo_is_decoded_once_and_found_by_its_bytes(tmp_path: Path, monkeypatch) -> None:
    paths, cache = _photos(tmp_path), tmp_path / "cache"
    px, err = pc.decode_cached(paths, cache)
    direct, _ = load_pixels(paths[:3])
    assert np.array_equal(px[:3], direct) and err[:3] == [None] * 3
    assert err[3].startswith("not a readable image") and err[4] == "no such file"
    calls = []
    real = pc.load_pixels
    monkeypatch.setattr(pc, "load_pixels", lambda ps, *a, **k: (calls.append(list(ps)), real(ps, *a, **k))[1])
    copy = tmp_path / "elsewhere.png"
    copy.write_bytes(paths[0].read_bytes())  # the same bytes under another name: a cache hit
    again, err2 = pc.decode_cached([*paths, copy], cache)
    assert calls == [[paths[3]]]  # only the broken one is tried again
    assert np.array_equal(again[:3], px[:3]) and np.array_equal(again[5], px[0]) and err2[3] == err[3]
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(paths[0])  # replaced under the same name
    calls.clear()
    pc.decode_cached(paths[:1], cache)
    assert calls == [[paths[0]]]
