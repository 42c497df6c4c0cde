"""The recall channels on the served path, and a bundle built without photos."""

import json
from pathlib import Path

import numpy as np
import pytest

from bundle.versions import bundles_dir, current_version
from common.onnx_runtime import make_session
from recsys.channels import ChannelConfig, item2item_scores
from serving.loaded_bundle import LoadedBundle
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _loaded(artifacts: Path) -> LoadedBundle:
    return LoadedBundle(bundles_dir(artifacts) / current_version(artifacts), ServingSettings(artifacts_dir=artifacts))


def _i2i_top(b: LoadedBundle, clicked: int, n: int) -> list[str]:
    """The item-to-item channel's own top list for one clicked item (live items, the item itself out)."""
    s = item2item_scores(b.channels, np.array([clicked]), b.catalog.n_items)
    ok = np.flatnonzero((s > 0) & b.items_index.live)
    ok = ok[ok != clicked]
    return [b.catalog.item_ids[r] for r in ok[np.argsort(-s[ok], kind="stable")][:n]]


def test_bundle_carries_the_channels_its_ranker_was_trained_with(tiny_artifacts: Path) -> None:
    b = _loaded(tiny_artifacts)
    meta = make_session(b.path / "ranker.onnx").get_modelmeta().custom_metadata_map
    assert b.channels is not None and b.channels.config == ChannelConfig(**json.loads(meta["channels"]))
    assert b.channels.neighbours.shape[0] == b.catalog.n_items
    assert len(b.ranker.columns) == len(json.loads(meta["dense"]))


def test_a_clicked_items_neighbours_reach_the_page_and_hidden_ones_never_do(artifacts: Path) -> None:
    b = _loaded(artifacts)
    clicked = int(np.argmax((b.channels.neighbours >= 0).sum(1)))  # the item with the most neighbours
    want = _i2i_top(b, clicked, 5)
    assert want, "the tiny shop's item has no item-to-item neighbours"
    body = {"recent_item_ids": [b.catalog.item_ids[clicked]], "k": 100, "in_stock_only": False,
            "exclude_purchased": False}
    with make_client(artifacts) as c:
        got = [i["item_id"] for i in c.post("/v1/recommendations", json=body).json()["items"]]
        assert set(want) <= set(got)  # an anonymous session: the channel's candidates all went to the ranker
        assert c.delete(f"/v1/items/{want[0]}", headers=AUTH).status_code == 200
        got = [i["item_id"] for i in c.post("/v1/recommendations", json=body).json()["items"]]
        assert want[0] not in got and set(want[1:]) <= set(got)


@pytest.fixture(scope="module")
def photoless_artifacts(tiny_shop: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny shop's models built into a bundle as if the catalog had no photos."""
    from dataclasses import replace

    from bundle.versions import promote
    from pipelines.assemble import assemble_bundle

    art = tmp_path_factory.mktemp("photoless")
    assemble_bundle(art, tiny_shop, replace(tiny_models, image_model=None, image_vectors=None), version="v1")
    promote(art, "v1")
    return art


def test_a_bundle_without_photos_recommends_and_refuses_photo_routes_with_409(photoless_artifacts: Path) -> None:
    files = json.loads((bundles_dir(photoless_artifacts) / "v1" / "manifest.json").read_text())["files"]
    assert "image_model.onnx" not in files and "image_index.faiss" not in files and "channels.npz" in files
    b = _loaded(photoless_artifacts)
    user = next(u for u, r in b.shoppers.row_of.items() if len(b.shoppers.history[r]))
    with make_client(photoless_artifacts) as c:
        r = c.post("/v1/recommendations", json={"user_id": user, "k": 5, "in_stock_only": False})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        iid = r.json()["items"][0]["item_id"]
        assert c.get(f"/v1/items/{iid}/similar", params={"by": "behaviour"}).status_code == 200
        r = c.get(f"/v1/items/{iid}/similar", params={"by": "image"})
        assert r.status_code == 409 and "without photos" in r.json()["detail"]
        r = c.post("/v1/images/classify", files={"image": ("x.png", b"\x89PNG", "image/png")})
        assert r.status_code == 409 and "no image model" in r.json()["detail"]
        r = c.post("/v1/items", headers=AUTH, data={"item_id": "n1", "title": "t", "price": "1"},
                   files={"image": ("x.png", b"\x89PNG", "image/png")})
        assert r.status_code == 409
        assert c.get("/readyz").status_code == 200
