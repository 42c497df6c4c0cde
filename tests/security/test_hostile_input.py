"""Hostile input (issue 28, findings 1, 6, 7 and 8): ids with quotes and angle brackets through the
import, the API and every page; photos Pillow chokes on; bodies labelled to get a larger limit;
error answers that echo what they refuse; the headers every answer carries."""

from __future__ import annotations

import html
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.validate import validate
from serving.catalog_columns import RowIndex
from tests.serving.conftest import AUTH, READ, make_client

HOSTILE = ['x" onerror="alert(1)" y="', "<script>alert(1)</script>", "a'b", "back\\slash", "tab\there", "`tick`"]


def _png(size: int = 28) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def c(tiny_artifacts: Path):
    with make_client(tiny_artifacts) as client:
        yield client


# ------------------------------------------------------------------ ids with quotes and angle brackets


def test_the_import_rejects_hostile_and_email_shaped_ids_with_a_reason() -> None:
    items = pd.DataFrame({"item_id": ["ok1", *HOSTILE, "x" * 201], "category": "Bag", "price": 1.0})
    users = pd.DataFrame({"user_id": ["u1", "jane.doe@example.com", "<u>"]})
    events = pd.DataFrame({"user_id": ["u1"], "item_id": ["ok1"], "event": ["view"],
                           "ts": [pd.Timestamp("2026-01-01", tz="UTC")]})
    v = validate(items, users, events)
    assert v.items["item_id"].tolist() == ["ok1"] and v.users["user_id"].tolist() == ["u1"]
    reasons = v.rejected.set_index("row")["reason"]
    assert all("ids may not" in r or "longer than 200" in r for r in v.rejected[v.rejected["table"] == "items"]
               ["reason"])
    user_reasons = " ".join(v.rejected[v.rejected["table"] == "users"]["reason"])
    assert "e-mail address" in user_reasons and "ids may not" in user_reasons and len(reasons) == 9


def test_the_admin_api_refuses_hostile_ids_with_a_reason(artifacts: Path) -> None:
    with make_client(artifacts) as c:
        for bad in HOSTILE:
            r = c.post("/v1/items", headers=AUTH, data={"item_id": bad, "title": "t", "price": "1"},
                       files={"image": ("p.png", _png(), "image/png")})
            assert r.status_code == 422, (bad, r.text)
        assert c.app.state.service.bundle.catalog.n_items == 400  # nothing added


@pytest.fixture(scope="module")
def planted(tiny_artifacts: Path):
    """A bundle whose catalog holds a hostile id (an older import, another tool's bundle): every
    answer and page must carry it as data."""
    with make_client(tiny_artifacts) as client:
        cat = client.app.state.service.bundle.catalog
        old = cat.item_ids.copy()
        cat.item_ids[int(client.app.state.service.bundle.popular[0])] = HOSTILE[0]
        cat.item_ids[int(client.app.state.service.bundle.popular[1])] = HOSTILE[1]
        cat.row_of = RowIndex(cat.item_ids)
        yield client
        cat.item_ids = old
        cat.row_of = RowIndex(old)


def test_json_answers_percent_encode_ids_in_urls(planted) -> None:
    items = planted.post("/v1/recommendations", json={"k": 5, "in_stock_only": False}).json()["items"]
    hostile = {i["item_id"]: i["image_url"] for i in items if i["item_id"] in HOSTILE}
    assert set(hostile) == set(HOSTILE[:2])
    for url in hostile.values():
        assert url.startswith("/images/") and not set('"<> ') & set(url), url
    assert planted.get(hostile[HOSTILE[0]]).status_code in (200, 404)  # a working URL, not markup


@pytest.mark.parametrize("path", ["/", "/merch", "/merch/online", "/merch/quality", "/merch/exposure", "/merch/photos",
                                  "/merch/preview", "/merch/rules", "/merch/map"])
def test_every_page_renders_hostile_ids_as_text(planted, path: str) -> None:
    planted.post("/v1/merch/rules", headers=AUTH, json={"action": "pin", "item_id": HOSTILE[1], "slot": 1,
                                                         "rule_id": "hostile"})
    try:
        page = planted.get(path, headers=READ)
        assert page.status_code == 200, path
        for bad in HOSTILE[:2]:
            assert bad not in page.text, path  # never raw markup
        if path == "/merch/rules":
            assert html.escape(HOSTILE[1]) in page.text  # the rule's product, escaped
    finally:
        planted.delete("/v1/merch/rules/hostile", headers=AUTH)


def test_no_page_script_builds_markup_from_strings() -> None:
    static = Path(__file__).parents[2] / "serving" / "static"
    for js in static.glob("*.js"):
        text = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "localStorage", "eval("):
            assert sink not in text, (js.name, sink)


# ------------------------------------------------------------------ photos Pillow chokes on


def _png_with_bad_ihdr() -> bytes:
    good = _png()
    ihdr = good[8:33]
    bad = ihdr[:4] + b"IHDR" + struct.pack(">II", 0, 10) + ihdr[16:21]
    return good[:8] + bad[:21] + struct.pack(">I", zlib.crc32(bad[4:21])) + good[33:]


def _tiff(mode: str) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (20, 20)).save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("error", [ValueError("bad EXIF"), TypeError("bad orientation"), SyntaxError("tag")])
def test_an_exif_block_pillow_cannot_apply_is_a_422(c, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """``exif_transpose`` once ran outside the decode's error handling: its errors were 500s."""
    import vision.preprocess as pp

    def broken(img):
        raise error

    monkeypatch.setattr(pp.ImageOps, "exif_transpose", broken)
    r = c.post("/v1/images/classify", files={"image": ("p.png", _png(), "image/png")})
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"], r.text


@pytest.mark.parametrize(("name", "data"), [("LAB TIFF", _tiff("LAB")), ("CMYK TIFF", _tiff("CMYK")),
                                            ("PNG with a bad IHDR length", _png_with_bad_ihdr()),
                                            ("GIF", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
                                            ("BMP", b"BM" + b"\0" * 60)])
def test_every_bad_photo_is_a_422_with_a_reason(c, name: str, data: bytes) -> None:
    for route in ("/v1/images/classify", "/v1/images/search"):
        r = c.post(route, files={"image": ("p.img", data, "image/png")})
        assert r.status_code == 422 and "image" in r.json()["detail"], (name, route, r.status_code, r.text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=2048),
                      st.binary(max_size=512).map(lambda b: _png()[:40] + b),  # a PNG header, then anything
                      st.integers(0, 200).map(lambda n: _png()[:n]),  # truncated anywhere
                      st.binary(min_size=1, max_size=64).map(lambda b: b"\xff\xd8\xff\xe1" + b)),
       content_type=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/html", ""]))
def test_upload_fuzz_never_a_server_error(c, data: bytes, content_type: str) -> None:
    r = c.post("/v1/images/classify", files={"image": ("x", data, content_type)})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300])


def test_an_image_search_with_too_many_categories_is_a_422(c) -> None:
    r = c.post("/v1/images/search", params=[("categories", f"c{i}") for i in range(101)],
               files={"image": ("p.png", _png(), "image/png")})
    assert r.status_code == 422 and "categories" in r.text


# ------------------------------------------------------------------ body limits and echoes


def test_the_body_limit_is_the_routes_whatever_the_content_type_says(c) -> None:
    body = b"x" * (5 << 20)
    r = c.post("/v1/recommendations", content=body, headers={"Content-Type": "multipart/form-data; boundary=z"})
    assert r.status_code == 413 and len(r.content) < 300  # once: a 5.2 MB 422 echoing the body


def test_an_error_answer_echoes_at_most_a_short_prefix(c) -> None:
    body = b"{" + b"not json " * 50_000  # under the body limit, not JSON
    r = c.post("/v1/recommendations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
    r = c.post("/v1/merch/preview", json={"request": {"k": 3, "exclude_item_ids": ["y" * 900] * 1001}}, headers=READ)
    assert r.status_code == 422 and len(r.content) < 5000, len(r.content)


# ------------------------------------------------------------------ headers on every answer


@pytest.mark.parametrize("path", ["/", "/merch/login", "/v1/ping", "/healthz", "/static/merch.js"])
def test_every_answer_carries_the_security_headers(c, path: str) -> None:
    r = c.get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_photos_and_console_answers_carry_them_too(c) -> None:
    item = str(c.app.state.service.bundle.catalog.item_ids[0])
    photo = c.get(f"/images/{item}")
    assert photo.status_code == 200 and photo.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in photo.headers["content-security-policy"]
    assert c.get("/v1/analytics/tonight", headers=READ).headers["cache-control"] == "no-store"
