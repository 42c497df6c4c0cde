"""The nightly canary end to end (pipelines/canary.py): tonight's bundle starts as the challenger of
the live one in the real service, shoppers' clicks come back through the events API, and the next
decision promotes the better bundle (CURRENT moves) or rolls the degraded one back by its guardrail
(CURRENT stays). Each decision is saved with its reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundle.versions import current_version, promote
from pipelines.assemble import assemble_bundle
from pipelines.canary import decide_canaries, experiment_bundles, start_canary
from pipelines.nightly import NightlyConfig, publish
from serving.merch_store import MerchStore
from tests.helpers import eventually
from tests.serving.conftest import READ, make_client

LIVE, NEW = "20260101T000000Z", "20260102T000000Z"


@pytest.fixture(scope="module")
def two_bundles(tiny_shop: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    art = tmp_path_factory.mktemp("canary")
    for v in (LIVE, NEW):
        assemble_bundle(art, tiny_shop, tiny_models, version=v)
    promote(art, LIVE)
    return art


def _shop(art: Path, clicks: dict[str, tuple[int, int]], pages: int = 2) -> dict[str, int]:
    """Every known shopper asks for ``pages`` home pages and clicks the first ``clicks[variant][n % 2]``
    items of each (n: the shopper's index)."""
    seen = {"live": 0, "candidate": 0}
    with make_client(art, events=True) as c:
        users = c.get("/v1/merch/shoppers", params={"limit": 200}, headers=READ).json()["user_ids"]
        first = {"user_id": users[0], "k": 8, "placement": "home"}
        assert c.post("/v1/recommendations", json=first).json()["variant"] is None  # the candidate is loading
        state = c.app.state.service
        eventually(lambda: NEW in state.variant_bundles.bundles, 60, "the candidate loaded beside the live one")
        events = []
        for n, u in enumerate(users):
            for p in range(pages):
                page = c.post("/v1/recommendations", json={"user_id": u, "k": 8, "placement": "home"}).json()
                arm = page["variant"].split(":")[1]
                seen[arm] += 1
                events += [{"event_id": f"{u}-{p}-{j}", "type": "click", "user_id": u, "rec_id": page["rec_id"],
                            "item_id": it["item_id"], "position": j + 1}
                           for j, it in enumerate(page["items"][: clicks[arm][n % 2]])]
        served = c.app.state.service.served
        eventually(lambda: not served.queue, what="served lists written")
        for i in range(0, len(events), 500):
            assert c.post("/v1/events", json={"events": events[i: i + 500]}).status_code == 200
    return seen


def _canary(art: Path) -> dict:
    return start_canary(art, NEW, placements=["home"], share=0.5, days=14, margin=0.02, metric="ctr",
                        min_impressions=200)


def test_a_better_candidate_is_promoted(two_bundles: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(two_bundles, art)
    started = _canary(art)
    assert started["status"] == "running" and current_version(art) == LIVE
    assert experiment_bundles(art) == {LIVE, NEW}  # kept by retain while it runs
    seen = _shop(art, {"live": (1, 2), "candidate": (3, 4)}, pages=6)
    assert min(seen.values()) > 40
    [d] = decide_canaries(art, lambda v: publish(art, v, NightlyConfig()))
    assert d["status"] == "promoted" and d["decided"] == "tonight", d["reason"]
    assert "better than the live bundle" in d["reason"] and f"CURRENT -> {NEW}" in d["reason"]
    assert current_version(art) == NEW
    [e] = MerchStore(art).experiments(fresh=True)
    assert e.status == "promoted" and e.ended_at is not None


def test_a_degraded_candidate_is_rolled_back_by_its_guardrail(two_bundles: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(two_bundles, art)
    _canary(art)
    _shop(art, {"live": (1, 2), "candidate": (0, 0)})  # nobody clicks what the candidate shows
    [d] = decide_canaries(art, lambda v: pytest.fail("a degraded bundle must not be published"))
    assert d["status"] == "rolled back" and d["reason"].startswith("guardrail: candidate: CTR 0.0000 <"), d
    assert current_version(art) == LIVE
    assert experiment_bundles(art) == set()


def test_an_undecided_canary_keeps_running_and_a_new_one_supersedes_it(two_bundles: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(two_bundles, art)
    first = _canary(art)
    [d] = decide_canaries(art, lambda v: pytest.fail("nothing to decide on"))
    assert d["decided"] == "not yet" and d["status"] == "running"
    second = _canary(art)
    old, new = MerchStore(art).experiments(fresh=True)
    assert old.experiment_id == first["experiment_id"] and old.status == "rolled back"
    assert "superseded" in old.reason and new.experiment_id == second["experiment_id"]
    MerchStore(art).save_experiment(new.model_copy(update={"canary": False, "name": "a merchandiser's"}))
    assert _canary(art)["status"] == "not started"  # never takes a placement from a merchandiser
