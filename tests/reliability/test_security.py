"""Findings of the reliability review (issue 14), each a test that failed before its fix."""

import json
import math
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from bundle.versions import bundles_dir, current_version, promote, write_bundle
from serving.live import ChangeLog
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_an_uploaded_photo_is_stored_inside_the_live_folder_whatever_the_item_id(tmp_path: Path) -> None:
    log = ChangeLog(tmp_path, "v1")
    for item_id, suffix in (("../../escape", ".png"), ("a/b", ".html"), ("x", ".PNG")):
        p = log.save_image(item_id, b"data", suffix)
        assert p.parent == log.images and p.read_bytes() == b"data"
        assert p.suffix in (".png", ".img") and ".html" not in p.name
    assert sorted(q.name for q in tmp_path.rglob("*") if q.is_file()) == sorted(q.name for q in log.images.iterdir())


def test_images_route_serves_only_files_inside_the_dataset_or_live_folders(artifacts: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    with make_client(artifacts) as c:
        b = c.app.state.service.bundle
        iid = str(b.catalog.item_ids[0])
        r = c.get(f"/images/{iid}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
        b.catalog.image_rel[0] = str(secret)  # a catalog row naming a file elsewhere (absolute or ../)
        assert c.get(f"/images/{iid}").status_code == 404
        b.catalog.image_rel[0] = "../" * 12 + str(secret).lstrip("/")
        assert c.get(f"/images/{iid}").status_code == 404


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_prices_are_refused(artifacts: Path, bad: str) -> None:
    with make_client(artifacts) as c:
        iid = str(c.app.state.service.bundle.catalog.item_ids[0])
        r = c.patch(f"/v1/items/{iid}", headers=AUTH, json={"price": bad})
        assert r.status_code == 422, r.text
        assert math.isfinite(c.get(f"/v1/items/{iid}").json()["price"])
        r = c.post("/v1/recommendations", json={"k": 3, "price_max": bad})
        assert r.status_code == 422
        r = c.post("/v1/items", headers=AUTH, data={"item_id": "n", "title": "t", "price": bad},
                   files={"image": ("x.png", b"\x89PNG", "image/png")})
        assert r.status_code == 422


def test_a_short_admin_token_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        ServingSettings(admin_token="short")
    assert ServingSettings(admin_token="x" * 16).admin_token == "x" * 16


def test_an_onnx_file_runtime_cannot_load_is_refused_and_the_old_bundle_keeps_serving(artifacts: Path) -> None:
    with make_client(artifacts) as c:
        old = current_version(artifacts)
        src = bundles_dir(artifacts) / old
        files = {f: src / f for f in json.loads((src / "manifest.json").read_text())["files"]}
        bad = artifacts.parent / "ranker.onnx"
        bad.write_bytes(b"not a protobuf at all")
        files["ranker.onnx"] = bad  # checksummed as it is: verification passes, loading does not
        manifest = json.loads((src / "manifest.json").read_text())
        write_bundle(artifacts, files, {k: v for k, v in manifest.items() if k not in ("version", "created_at",
                                                                                          "files")}, version="v2")
        promote(artifacts, "v2")
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409 and "v2" in r.json()["detail"]
        ready = c.get("/readyz").json()
        assert ready["bundle_version"] == old
        assert c.post("/v1/recommendations", json={"k": 3}).status_code == 200
    shutil.rmtree(bundles_dir(artifacts) / "v2")


def test_the_quality_gate_refuses_a_nan_metric(tmp_path: Path) -> None:
    from pipelines.nightly import NightlyConfig, quality_gate

    cfg = NightlyConfig()
    v = quality_gate(tmp_path, {cfg.gate_metric: float("nan")}, cfg, {"index_recall": {}})
    assert v["passed"] is False and "nan" in v["reason"]


def test_docs_and_metrics_can_be_closed(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts, public_docs=False, public_metrics=False) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=AUTH).status_code == 200
    with make_client(tiny_artifacts, public_docs=True, public_metrics=True) as c:  # opened (closed by default: #28)
        assert c.get("/openapi.json").status_code == 200 and c.get("/metrics").status_code == 200


def test_logs_carry_no_shopper_ids_or_bodies_at_info(tiny_artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO), make_client(tiny_artifacts) as c:
        b = c.app.state.service.bundle
        user = next(u for u, r in b.shoppers.row_of.items() if len(b.shoppers.history[r]))
        secret = "session-secret-item"
        c.post("/v1/recommendations", json={"user_id": user, "k": 3, "recent_item_ids": [secret]})
        c.post("/v1/recommendations", json={"user_id": user, "k": "not a number"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert user not in text and secret not in text
