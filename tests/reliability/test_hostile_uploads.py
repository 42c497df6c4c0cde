"""Hostile uploads and bodies: each answered with its 4xx quickly, before the expensive part."""

import io
import time
from pathlib import Path

import pytest
from PIL import Image

import serving.limits as limits
from tests.serving.conftest import TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), 200).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(30_000, 1), (100_000, 1), (2_000, 50)])
def test_thin_images_are_refused_in_milliseconds(tiny_artifacts: Path, size: tuple[int, int]) -> None:
    with make_client(tiny_artifacts) as c:
        t = time.perf_counter()
        r = c.post("/v1/images/classify", files={"image": ("x.png", _png(*size), "image/png")})
        assert r.status_code == 422 and ("longest side" in r.text or "differ" in r.text), r.text
        assert time.perf_counter() - t < 0.5  # was 1.3 s of CPU for 30,000 x 1


def test_a_large_photo_is_shrunk_before_it_is_padded(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts) as c:
        t = time.perf_counter()
        r = c.post("/v1/images/classify", files={"image": ("x.png", _png(9_000, 600), "image/png")})
        assert r.status_code == 200 and time.perf_counter() - t < 2.0


def test_an_oversized_body_is_refused_before_it_is_read_whatever_the_route(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts, max_upload_bytes=100_000, max_body_bytes=10_000) as c:
        big = b"\0" * 300_000
        # no admin token: the size is refused before the multipart body is spooled or auth is looked at
        r = c.post("/v1/items", files={"image": ("x.png", big, "image/png")}, data={"item_id": "a"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/v1/recommendations", content=b"[" + b"1," * 20_000 + b"1]",
                   headers={"content-type": "application/json"})
        assert r.status_code == 413

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(40):
                yield b" " * 1_000

        r = c.post("/v1/recommendations", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.post("/v1/recommendations", json={"k": 2}).status_code == 200  # normal bodies unaffected


def test_concurrent_decodes_are_bounded(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts, max_concurrent_decodes=1, decode_wait_s=0.05) as c:
        with limits.decode_slot(c.app.state.service):  # another request is decoding
            r = c.post("/v1/images/classify", files={"image": ("x.png", _png(28, 28), "image/png")})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
        r = c.post("/v1/images/classify", files={"image": ("x.png", _png(28, 28), "image/png")})
        assert r.status_code == 200
