"""The merchandisers' API on the tiny bundle: rules in the service's path, the preview, label
decisions applied live and to the next night's data, explanations, saliency, analytics, pages."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bundle.photo_predictions import PhotoPredictions
from bundle.runs import nights, tonight
from common.assets import PLOTLY_JS, VENDOR
from pipelines.label_fixes import apply_label_fixes
from serving.analytics import sample_shoppers
from tests.serving.conftest import AUTH, READ, make_client


def _shopper(c) -> str:
    return c.get("/v1/merch/shoppers", params={"limit": 1}, headers=READ).json()["user_ids"][0]


def _page(c, **body) -> list[dict]:
    r = c.post("/v1/recommendations", json={"k": 10, "in_stock_only": False} | body)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_rules_change_what_the_service_returns(artifacts: Path) -> None:
    with make_client(artifacts) as c:
        user = _shopper(c)
        before = [i["item_id"] for i in _page(c, user_id=user)]
        pin = {"action": "pin", "item_id": before[-1], "slot": 1, "rule_id": "pin-last"}
        assert c.post("/v1/merch/rules", json=pin).status_code == 401  # writes need the token
        bad = c.post("/v1/merch/rules", json=pin | {"item_id": "no-such"}, headers=AUTH)
        assert bad.status_code == 422 and "unknown item" in bad.json()["detail"]
        assert c.post("/v1/merch/rules", json=pin | {"slot": 0}, headers=AUTH).status_code == 422
        assert c.post("/v1/merch/rules", json=pin, headers=AUTH).status_code == 201
        after = [i["item_id"] for i in _page(c, user_id=user)]
        assert after[0] == before[-1] and after[1:] == before[:-1]
        # exclude the top item; bury nothing else: everything moves up one, the page refills
        c.post("/v1/merch/rules", json={"action": "exclude", "item_id": before[0], "rule_id": "no-top"}, headers=AUTH)
        after = [i["item_id"] for i in _page(c, user_id=user)]
        assert before[0] not in after and after[0] == before[-1] and len(after) == 10
        # excluding a whole category: the popular fallback and the model path both refill the page
        top_cat = _page(c)[0]["category"]
        c.post("/v1/merch/rules", json={"action": "exclude", "category": top_cat, "rule_id": "no-cat"}, headers=AUTH)
        for page in (_page(c), _page(c, user_id=user)):
            assert len(page) == 10 and all(i["category"] != top_cat for i in page)
        c.delete("/v1/merch/rules/no-cat", headers=AUTH)
        # a rule scoped to a category page leaves the home page alone
        cat = _page(c, user_id=user)[3]["category"]
        c.post("/v1/merch/rules", json={"action": "exclude", "category": cat, "scope": cat, "rule_id": "scoped"},
               headers=AUTH)
        assert all(i["item_id"] == before[-1] for i in _page(c, user_id=user, categories=[cat]))  # only the pin
        assert any(i["category"] == cat for i in _page(c, user_id=user))
        # an expired rule does nothing; deleting restores the ranked order
        c.post("/v1/merch/rules", json={"action": "exclude", "item_id": after[1], "rule_id": "old",
                                        "ends_at": "2020-01-01T00:00:00Z"}, headers=AUTH)
        assert after[1] in [i["item_id"] for i in _page(c, user_id=user)]
        listed = {r["rule_id"] for r in c.get("/v1/merch/rules", headers=READ).json()["rules"]}
        assert listed == {"pin-last", "no-top", "scoped", "old"}
        for rid in listed:
            assert c.delete(f"/v1/merch/rules/{rid}", headers=AUTH).status_code == 200
        assert c.delete("/v1/merch/rules/old", headers=AUTH).status_code == 404
        assert [i["item_id"] for i in _page(c, user_id=user)] == before
    with make_client(artifacts) as c:  # the log outlives the process
        c.post("/v1/merch/rules", json=pin, headers=AUTH)
    with make_client(artifacts) as c:
        assert _page(c, user_id=user)[0]["item_id"] == before[-1]


def test_preview_shows_a_draft_without_saving_it_and_explains(artifacts: Path) -> None:
    with make_client(artifacts) as c:
        user = _shopper(c)
        history = [i["item_id"] for i in c.get(f"/v1/merch/shoppers/{user}", headers=READ).json()["history"]]
        base = [i["item_id"] for i in _page(c, user_id=user)]
        extra = next(i for i in pd.read_parquet(next((artifacts / "bundles").iterdir()) / "items.parquet")["item_id"]
                     if i not in base and i not in history)
        r = c.post("/v1/merch/preview", json={"request": {"user_id": user, "k": 5, "in_stock_only": False},
                                              "rules": [{"action": "pin", "item_id": extra, "slot": 3}]}, headers=READ)
        assert r.status_code == 200, r.text
        page, baseline = r.json()["page"]["items"], r.json()["baseline"]["items"]
        assert page[2]["item_id"] == extra and page[2]["reason"]["rules"] == ["draft-1"]
        assert [i["item_id"] for i in baseline] == base[:5]
        assert c.get("/v1/merch/rules", headers=READ).json()["rules"] == []  # nothing saved
        for item in page:
            why = item["reason"]
            assert why["because_of"] is None or why["because_of"] in history
            assert why["channels"], item
        top = page[0]["reason"]
        assert top["retrieved_at"] >= 1 and top["ranked_at"] == 1
        boost = {"action": "boost", "category": "Nope"}
        bad = c.post("/v1/merch/preview", json={"request": {"k": 5}, "rules": [boost]}, headers=READ)
        assert bad.status_code == 422 and "unknown category" in bad.json()["detail"]


def test_label_decisions_apply_live_and_to_the_next_nights_data(artifacts: Path, tiny_shop: Path,
                                                                tmp_path: Path) -> None:
    with make_client(artifacts) as c:
        b = c.app.state.service.bundle
        item = b.catalog.item_ids[0]
        old = b.catalog.category_of(0)
        new = next(n for n in b.image_model.class_names if n != old and n in b.catalog.category_names)
        # one suspect photo: the model is sure it is `new`
        pred = np.full(b.catalog.n_items, -1, np.int16)
        pred[0] = b.image_model.class_names.index(new)
        conf = np.zeros(b.catalog.n_items, np.float32)
        conf[0] = 0.99
        b.photos = PhotoPredictions(pred, conf, np.zeros(b.catalog.n_items, np.float32))
        got = c.get("/v1/analytics/photos", params={"shoppers": 10}, headers=READ).json()
        assert [i["item_id"] for i in got["items"]] == [item] and got["items"][0]["predicted"] == new
        png = c.get(got["items"][0]["saliency_url"], headers=READ)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert c.post(f"/v1/merch/labels/{item}", json={"decision": "accept"}).status_code == 401
        r = c.post(f"/v1/merch/labels/{item}", json={"decision": "accept"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["category"] == new
        assert c.get(f"/v1/items/{item}").json()["category"] == new
        assert item in [i["item_id"] for i in _page(c, categories=[new], k=100)]
        assert c.get("/v1/analytics/photos", params={"shoppers": 10}, headers=READ).json()["items"] == []
        assert c.post("/v1/merch/labels/nope", json={"decision": "dismiss"}, headers=AUTH).status_code == 404
    with make_client(artifacts) as c:  # replayed onto a fresh load
        assert c.get(f"/v1/items/{item}").json()["category"] == new
    data = tmp_path / "data"
    data.mkdir()
    pd.read_parquet(tiny_shop / "items.parquet").to_parquet(data / "items.parquet")
    assert apply_label_fixes(data, artifacts) == 1
    fixed = pd.read_parquet(data / "items.parquet").set_index("item_id")["category"]
    assert fixed[item] == new and apply_label_fixes(data, artifacts) == 0  # idempotent


def test_explain_flag_and_saliency(client, tiny_shop: Path) -> None:
    plain = _page(client)
    assert all(i["reason"] is None for i in plain)
    anon = _page(client, explain=True)
    assert all(i["reason"]["channels"] == ["popular"] for i in anon)
    photo = next((tiny_shop / "images").rglob("*.png")).read_bytes()
    r = client.post("/v1/images/classify", params={"saliency": True}, files={"image": ("p.png", photo, "image/png")})
    heat = np.array(r.json()["saliency"])
    assert heat.shape == (28, 28) and heat.min() >= 0 and heat.max() <= 1


def test_analytics_agree_with_the_service_path(client) -> None:
    e = client.get("/v1/analytics/exposure", params={"shoppers": 20, "k": 5}, headers=READ).json()
    b = client.app.state.service.bundle  # the sample is seeded: recompute it through the public API
    counts: dict[str, int] = {}
    for u in sample_shoppers(b, 20):
        for i in client.post("/v1/recommendations", json={"user_id": u, "k": 5}).json()["items"]:
            counts[i["item_id"]] = counts.get(i["item_id"], 0) + 1
    live = int(b.items_index.live.sum())
    assert e["coverage"] == len(counts) / live
    assert sum(band["items"] for band in e["long_tail"]) == live
    assert sum(c["items"] for c in e["categories"]) == live
    top = max(counts.values())
    assert max(i["recommended"] for c in e["categories"] for i in c["most"]) == top
    m = client.get("/v1/analytics/confusion", headers=READ).json()
    assert len(m["matrix"]) == len(m["classes"]) == 10
    pts = client.get("/v1/analytics/catalog-map", params={"n": 50}, headers=READ).json()["points"]
    assert len(pts) == 50 and {"x", "y", "category"} <= set(pts[0])


def test_tonight_and_quality_from_run_summaries(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "20260101T000000Z.json").write_text(json.dumps({
        "status": "published", "version": "v1", "headline": {"ranker_ndcg@10": 0.10}, "guards": {"gini": 0.5}}))
    (runs / "20260102T000000Z.json").write_text(json.dumps({
        "status": "refused by the gate", "version": "v2", "headline": {"ranker_ndcg@10": 0.08},
        "live_headline": {"ranker_ndcg@10": 0.10}, "gate": {"reason": "ranker_ndcg@10 0.0800 < 0.0950"}}))
    (runs / "broken.json").write_text("{not json")
    assert [n["version"] for n in nights(tmp_path)] == ["v1", "v2"]
    t = tonight(tmp_path)
    assert t["status"] == "refused by the gate"
    assert t["deltas"] == [{"metric": "ranker_ndcg@10", "candidate": 0.08, "live": 0.10,
                            "delta": t["deltas"][0]["delta"]}]
    assert abs(t["deltas"][0]["delta"] + 0.02) < 1e-12


def test_pages_render(client) -> None:
    for path in ("/", "/merch", "/merch/online", "/merch/quality", "/merch/exposure", "/merch/photos", "/merch/preview",
                 "/merch/rules", "/merch/map"):
        r = client.get(path, headers=READ)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "/static/" in r.text and "https://" not in r.text, path
    js = client.get(f"/static/{PLOTLY_JS}")  # the vendored file is the one its README names, byte for byte
    readme = (VENDOR / "README.md").read_text()
    assert js.status_code == 200 and hashlib.sha256(js.content).hexdigest() in readme
