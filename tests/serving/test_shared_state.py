"""Two replicas without a shared disk, one Redis (VITRINE_STATE_URL): an admin change, a rule, a label
decision and a shopper's event taken by one are served by the other within a second; Redis down
degrades to the last state with a reason in /readyz and refuses writes (503); back up, nothing
acknowledged is lost and nothing is applied twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import eventually
from tests.redis_server import RedisServer
from tests.serving.conftest import TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"changes_poll_s": 0.1, "realtime_poll_s": 0.1}


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _replicas(tiny_artifacts: Path, tmp_path: Path, url: str):
    """Two apps, each over its own copy of the artifacts (the bundle; no live state shared on disk)."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        shutil.copytree(tiny_artifacts, d)
    return [make_client(d, state_url=url, events=True, **FAST) for d in dirs]


def test_a_change_taken_by_one_replica_is_served_by_the_other(tiny_artifacts: Path, tmp_path: Path,
                                                               redis_server: RedisServer) -> None:
    a, b = _replicas(tiny_artifacts, tmp_path, redis_server.url)
    with a, b:
        bundle = a.app.state.service.bundle
        page = a.post("/v1/recommendations", json={"k": 5, "in_stock_only": False}).json()["items"]
        priced, pinned = page[0]["item_id"], page[-1]["item_id"]
        row = bundle.catalog.row_of.get(priced)
        other = next(c for c in bundle.catalog.category_names if c != bundle.catalog.category_of(row))

        assert a.patch(f"/v1/items/{priced}", headers=AUTH, json={"price": 77.25}).status_code == 200
        assert a.post("/v1/merch/rules", headers=AUTH, json={"rule_id": "pin1", "action": "pin",
                                                             "item_id": pinned, "slot": 1}).status_code == 201
        r = a.post(f"/v1/merch/labels/{priced}", headers=AUTH, json={"decision": "accept", "category": other})
        assert r.status_code == 200 and r.json()["category"] == other
        ev = a.post("/v1/events", json={"events": [{"type": "view", "item_id": pinned, "session_id": "s-77"}]})
        assert ev.status_code == 200 and ev.json()["accepted"] == 1

        def b_serves_all() -> bool:
            item = b.get(f"/v1/items/{priced}").json()
            first = b.post("/v1/recommendations", json={"k": 5, "in_stock_only": False}).json()["items"][0]
            recent = b.app.state.service.realtime.recent(None, "s-77")[0]
            return item["price"] == 77.25 and item["category"] == other and first["item_id"] == pinned \
                and recent == [pinned]

        assert eventually(b_serves_all, what="replica b did not serve a's changes") < 1.0
        # and nothing was applied twice: each log holds one record of each, each replica read it once
        logs = a.app.state.service.state_logs
        assert len(logs.read_from(f"live/{bundle.version}/changes")[0]) == 1
        assert len(logs.read_from("events/recent")[0]) == 1
        assert b.get("/v1/merch/rules", headers=AUTH).json()["rules"][0]["rule_id"] == "pin1"


def test_redis_down_keeps_the_last_state_refuses_writes_and_recovers(tiny_artifacts: Path, tmp_path: Path,
                                                                     redis_server: RedisServer) -> None:
    a, b = _replicas(tiny_artifacts, tmp_path, redis_server.url)
    with a, b:
        items = [str(i) for i in a.app.state.service.bundle.catalog.item_ids[:3]]
        assert a.post("/v1/merch/rules", headers=AUTH, json={"rule_id": "pin0", "action": "pin",
                                                             "item_id": items[0], "slot": 1}).status_code == 201
        first = lambda c: c.post("/v1/recommendations", json={"k": 5, "in_stock_only": False}).json()["items"][0]  # noqa: E731
        eventually(lambda: first(b)["item_id"] == items[0], what="b did not take the rule")

        redis_server.kill()
        eventually(lambda: "shared state unreachable" in b.get("/readyz").json()["status"],
                   what="/readyz did not say the store is down")
        assert b.get("/readyz").status_code == 200  # degraded, still serving
        assert "127.0.0.1" not in b.get("/readyz").json()["status"]  # where Redis is: for the read role only
        assert redis_server.url.split("//")[1] in b.get("/readyz", headers=AUTH).json()["status"]
        assert first(b)["item_id"] == items[0]  # the last known rules still apply
        r = a.patch(f"/v1/items/{items[1]}", headers=AUTH, json={"price": 5.5})
        assert r.status_code == 503 and "nothing was changed" in r.json()["detail"] and r.headers["Retry-After"]
        assert a.get(f"/v1/items/{items[1]}").json()["price"] != 5.5  # refused = not applied here either
        ev = a.post("/v1/events", json={"events": [{"type": "view", "item_id": items[2], "session_id": "s-9"}]})
        assert ev.status_code == 200  # on this host's log: acknowledged, fanned out when the store is back

        redis_server.start()
        assert a.patch(f"/v1/items/{items[1]}", headers=AUTH, json={"price": 5.5}).status_code == 200
        eventually(lambda: b.get(f"/v1/items/{items[1]}").json()["price"] == 5.5
                   and b.app.state.service.realtime.recent(None, "s-9")[0] == [items[2]]
                   and b.get("/readyz").json()["status"] == "ready", what="b did not recover")
        logs = a.app.state.service.state_logs
        assert len(logs.read_from("merch/rules")[0]) == 1  # the rule from before the outage, once
        assert len(logs.read_from("events/recent")[0]) == 1
