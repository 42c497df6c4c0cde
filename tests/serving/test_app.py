"""HTTP contract of the service on a tiny bundle built in the test session."""

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bundle.versions import bundles_dir, promote, write_bundle
from tests.serving.conftest import READ, TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _bundle(artifacts: Path) -> Path:
    return bundles_dir(artifacts) / (artifacts / "CURRENT").read_text().strip()


def _users(artifacts: Path) -> pd.DataFrame:
    return pd.read_parquet(_bundle(artifacts) / "users.parquet")


def _items(artifacts: Path) -> pd.DataFrame:
    return pd.read_parquet(_bundle(artifacts) / "items.parquet").set_index("item_id")


def _shopper(artifacts: Path, with_purchase: bool = False) -> str:
    u = _users(artifacts)
    ok = u["history"].map(len) > 0
    if with_purchase:
        ok &= u["purchased"].map(len) > 0
    return str(u[ok]["user_id"].iloc[0])


def _png(seed: int = 0, size: int = 28) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header claiming side x side pixels (the decoder must refuse before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + \
        chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- import graph


def test_importing_the_whole_service_loads_no_torch() -> None:
    code = "import sys, serving.app, serving.reload, serving.live; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# ----------------------------------------------------------------------------- recommendations


def test_known_shopper_gets_model_ranked_items_without_purchases(client, tiny_artifacts: Path) -> None:
    user = _shopper(tiny_artifacts, with_purchase=True)
    r = client.post("/v1/recommendations", json={"user_id": user, "k": 8, "in_stock_only": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is None and body["user_known"] and body["bundle_version"] == "20260101T000000Z"
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 8 and len(set(ids)) == 8
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    u = _users(tiny_artifacts).set_index("user_id").loc[user]
    rows = _items(tiny_artifacts).reset_index()["item_id"]
    assert not set(rows[u["purchased"]]) & set(ids)
    assert body["timings"]["total_ms"] > 0 and body["items"][0]["image_url"] == f"/images/{ids[0]}"


def test_anonymous_session_and_nobody(client, tiny_artifacts: Path) -> None:
    some = list(_items(tiny_artifacts).index[:3])
    r = client.post("/v1/recommendations", json={"recent_item_ids": some, "k": 5}).json()
    assert r["fallback"] is None and not r["user_known"] and len(r["items"]) == 5
    r = client.post("/v1/recommendations", json={"user_id": "never-seen", "k": 5}).json()
    assert r["fallback"] == "popular" and not r["user_known"] and len(r["items"]) == 5


def test_popular_fallback_is_most_popular_first_within_scope(client, tiny_artifacts: Path) -> None:
    items = _items(tiny_artifacts)
    cat = items["category"].value_counts().index[0]
    r = client.post("/v1/recommendations", json={"k": 5, "categories": [cat], "in_stock_only": False}).json()
    stats = np.load(_bundle(tiny_artifacts) / "item_stats.npz")
    rows = items.reset_index().reset_index().set_index("item_id")["index"]
    pops = [stats["popularity"][rows[i["item_id"]]] for i in r["items"]]
    assert pops == sorted(pops, reverse=True) and all(i["category"] == cat for i in r["items"])
    in_cat = items["category"] == cat
    assert pops[0] == stats["popularity"][in_cat.to_numpy()].max()


def test_filters_hold_for_every_returned_item(client, tiny_artifacts: Path) -> None:
    user = _shopper(tiny_artifacts)
    items = _items(tiny_artifacts)
    cats = list(items["category"].value_counts().index[:2])
    lo, hi = np.quantile(items["price"], [0.2, 0.8])
    excl = list(items.index[:20])
    r = client.post("/v1/recommendations", json={"user_id": user, "k": 10, "categories": cats, "price_min": lo,
                                                 "price_max": hi, "exclude_item_ids": excl}).json()
    assert r["items"], r
    for it in r["items"]:
        assert it["category"] in cats and lo <= it["price"] <= hi and it["in_stock"] and it["item_id"] not in excl


def test_pagination_and_diversity(client, tiny_artifacts: Path) -> None:
    user = _shopper(tiny_artifacts)
    req = {"user_id": user, "in_stock_only": False}
    full = [i["item_id"] for i in client.post("/v1/recommendations", json=req | {"k": 10}).json()["items"]]
    p1 = [i["item_id"] for i in client.post("/v1/recommendations", json=req | {"k": 5}).json()["items"]]
    p2 = [i["item_id"] for i in client.post("/v1/recommendations", json=req | {"k": 5, "offset": 5}).json()["items"]]
    assert p1 + p2 == full
    r = client.post("/v1/recommendations", json=req | {"k": 10, "diversity": 2}).json()
    counts = pd.Series([i["category"] for i in r["items"]]).value_counts()
    assert counts.max() <= 2 and len(r["items"]) == min(10, 2 * _items(tiny_artifacts)["category"].nunique())


@pytest.mark.parametrize("body, reason", [
    ({"k": 0}, "greater than or equal to 1"),
    ({"k": 1000}, "above the limit"),
    ({"offset": 10_000}, "above the limit"),
    ({"categories": ["Spaceship"]}, "unknown categories"),
    ({"price_min": 50, "price_max": 10}, "above price_max"),
    ({"k": "ten"}, "valid integer"),
    ({"colour": "red"}, "Extra inputs"),
    ({"recent_item_ids": ["x"] * 60}, "limit is 50"),
])
def test_invalid_requests_get_422_with_a_reason(client, body: dict, reason: str) -> None:
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == 422 and reason in r.text, r.text


# ----------------------------------------------------------------------------- items and images


def test_item_similar_and_image(client, tiny_artifacts: Path) -> None:
    items = _items(tiny_artifacts)
    iid = items.index[5]
    r = client.get(f"/v1/items/{iid}")
    assert r.status_code == 200 and r.json()["category"] == items.loc[iid, "category"]
    for by in ("behaviour", "image"):
        s = client.get(f"/v1/items/{iid}/similar", params={"by": by, "k": 7, "in_stock_only": False}).json()
        ids = [i["item_id"] for i in s["items"]]
        assert len(ids) == 7 and iid not in ids and s["by"] == by
    cat = items.loc[iid, "category"]
    s = client.get(f"/v1/items/{iid}/similar", params={"by": "image", "k": 3, "categories": [cat]}).json()
    assert all(i["category"] == cat for i in s["items"])
    assert client.get("/v1/items/nope").status_code == 404
    assert client.get("/v1/items/nope/similar").status_code == 404
    assert client.get(f"/v1/items/{iid}/similar", params={"by": "smell"}).status_code == 422
    img = client.get(f"/images/{iid}")
    assert img.status_code == 200 and img.content[:4] == b"\x89PNG"


def test_classify_and_search_by_photo(client, tiny_shop: Path, tiny_artifacts: Path) -> None:
    items = _items(tiny_artifacts)
    photo = (tiny_shop / items["image"].iloc[0]).read_bytes()
    r = client.post("/v1/images/classify", files={"image": ("p.png", photo, "image/png")})
    assert r.status_code == 200, r.text
    probs = r.json()["probabilities"]
    assert abs(sum(p["probability"] for p in probs) - 1) < 1e-4 and len(probs) == 10
    assert [p["probability"] for p in probs] == sorted((p["probability"] for p in probs), reverse=True)
    s = client.post("/v1/images/search", params={"k": 4, "in_stock_only": False},
                    files={"image": ("p.png", photo, "image/png")}).json()
    assert s["items"][0]["item_id"] == items.index[0]  # its own catalog photo is the nearest


@pytest.mark.parametrize("payload, status, reason", [
    (b"not an image", 422, "not a readable image"),
    (b"", 422, "empty"),
    (None, 413, "larger than the limit"),
    ("bomb", 422, "the limit is"),
])
def test_bad_uploads_are_refused(client, payload, status: int, reason: str) -> None:
    if payload is None:
        payload = b"\0" * (5 << 20) + b"x"
    elif payload == "bomb":
        payload = _bomb_png()
    r = client.post("/v1/images/classify", files={"image": ("p.png", payload, "image/png")})
    assert r.status_code == status and reason in r.text, r.text


# ----------------------------------------------------------------------------- admin


def test_admin_needs_a_configured_token(artifacts: Path) -> None:
    with make_client(artifacts, admin_token=None) as c:
        r = c.post("/admin/reload")
        assert r.status_code == 403 and "disabled" in r.text
    with make_client(artifacts) as c:
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.patch("/v1/items/x", json={"in_stock": False}).status_code == 401
        assert c.post("/admin/reload", headers=AUTH).status_code == 200


def test_live_add_patch_hide_survive_a_restart(artifacts: Path) -> None:
    photo = _png(3)
    items = _items(artifacts)
    victim = items[items["in_stock"]].index[0]
    with make_client(artifacts) as c:
        r = c.post("/v1/items", headers=AUTH, data={"item_id": "new-1", "title": "New thing", "price": "12.5"},
                   files={"image": ("n.png", photo, "image/png")})
        assert r.status_code == 201, r.text
        assert r.json()["category"] == r.json()["predicted_category"] and r.json()["live"]
        s = c.post("/v1/images/search", params={"k": 1}, files={"image": ("n.png", photo, "image/png")}).json()
        assert s["items"][0]["item_id"] == "new-1"  # in the live image index
        sim = c.get("/v1/items/new-1/similar", params={"k": 5}).json()
        assert len(sim["items"]) == 5  # and in the behaviour index, from its item-tower vector
        # a session that clicked it: the user tower gets the OOV id for a row past its vocabulary
        rec = c.post("/v1/recommendations", json={"recent_item_ids": ["new-1", str(victim)], "k": 5})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 5, rec.text
        dup = c.post("/v1/items", headers=AUTH, data={"item_id": "new-1", "title": "x", "price": "1"},
                     files={"image": ("n.png", photo, "image/png")})
        assert dup.status_code == 409
        assert c.patch(f"/v1/items/{victim}", headers=AUTH, json={"in_stock": False}).json()["in_stock"] is False
        assert c.patch(f"/v1/items/{victim}", headers=AUTH, json={"price": -1}).status_code == 422
        assert c.delete("/v1/items/new-1", headers=AUTH).status_code == 200
        assert c.get("/v1/items/new-1/similar").status_code == 404
    with make_client(artifacts) as c:  # a restart replays the change log
        assert c.get("/v1/items/new-1").json()["live"]
        assert c.get(f"/v1/items/{victim}").json()["in_stock"] is False
        anon = c.post("/v1/recommendations", json={"k": 50}).json()
        ids = {i["item_id"] for i in anon["items"]}
        assert victim not in ids and "new-1" not in ids


def test_reload_swaps_good_bundles_and_refuses_bad_ones(artifacts: Path) -> None:
    cur = _bundle(artifacts)
    manifest = json.loads((cur / "manifest.json").read_text())
    info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    files = {name: cur / name for name in manifest["files"]}
    with make_client(artifacts) as c:
        write_bundle(artifacts, files, info, version="20260102T000000Z")
        promote(artifacts, "20260102T000000Z")
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["bundle_version"] == "20260102T000000Z"
        assert c.post("/v1/recommendations", json={"k": 2}).json()["bundle_version"] == "20260102T000000Z"
        bad = write_bundle(artifacts, files, info, version="20260103T000000Z")
        (bad / "ranker.onnx").write_bytes(b"garbage")  # corrupted after publishing
        (artifacts / "CURRENT").write_text("20260103T000000Z\n")  # someone bypassed `promote`
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409 and "corrupted" in r.text
        assert c.get("/readyz").json()["bundle_version"] == "20260102T000000Z"  # old one keeps serving
        assert c.post("/v1/recommendations", json={"k": 2}).status_code == 200


# ----------------------------------------------------------------------------- health and metrics


def test_health_readiness_metrics_and_openapi(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == 400
    client.post("/v1/recommendations", json={"k": 3})
    m = client.get("/metrics", headers=READ).text
    for name in ("vitrine_request_seconds_bucket", 'route="/v1/recommendations"', "vitrine_stage_seconds",
                 "vitrine_fallback_total", 'vitrine_bundle_info{', "vitrine_index_items"):
        assert name in m, name
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/recommendations", "/v1/items/{item_id}/similar", "/v1/images/classify", "/v1/images/search",
              "/v1/items", "/v1/items/{item_id}", "/admin/reload", "/healthz", "/readyz"):
        assert p in paths, p


def test_not_ready_without_a_bundle(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "no current bundle" in r.json()["status"]
        assert c.post("/v1/recommendations", json={}).status_code == 503


def test_a_new_current_is_picked_up_by_the_watcher(artifacts: Path) -> None:
    import time

    cur = _bundle(artifacts)
    manifest = json.loads((cur / "manifest.json").read_text())
    info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    with make_client(artifacts, watch_interval_s=0.1) as c:
        write_bundle(artifacts, {n: cur / n for n in manifest["files"]}, info, version="20260105T000000Z")
        promote(artifacts, "20260105T000000Z")
        deadline = time.time() + 30
        while c.get("/readyz").json().get("bundle_version") != "20260105T000000Z" and time.time() < deadline:
            time.sleep(0.1)
        assert c.get("/readyz").json()["bundle_version"] == "20260105T000000Z"


def test_an_installed_bundle_is_out_of_the_cyclic_gcs_reach(tiny_artifacts: Path) -> None:
    """Its long-lived objects are frozen, so a full collection no longer walks them (a p99 stall)."""
    import gc

    from serving.reload import reload_current
    from serving.settings import ServingSettings
    from serving.state import ServiceState

    gc.unfreeze()
    state = ServiceState(ServingSettings(artifacts_dir=tiny_artifacts, candidates=50))
    ok, detail = reload_current(state)
    assert ok, detail
    b = state.bundle
    assert gc.get_freeze_count() > 0
    assert all(o is not b.shoppers.row_of for o in gc.get_objects())  # frozen objects are not listed
    gc.unfreeze()
