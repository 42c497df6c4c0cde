"""The events API and what it feeds (docs/online.md): partial success with reasons, durable
acknowledgement, retries counted once, backlog and disk errors as 503, GA4's shape through the
mapping file, rec_ids that verify and the served lists they name, real-time state across workers,
sessions linked to shoppers, erasure."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bundle.logs import BacklogError, jsonl_files, log_dir, parquet_files, read_lines, shopper_hash
from tests.helpers import eventually
from tests.serving.conftest import AUTH, make_client


def _records(artifacts: Path, kind: str) -> list[dict]:
    root = log_dir(artifacts)
    rows = [r for p in jsonl_files(root, kind) for r in read_lines(p)[0]]
    return rows + [r for p in parquet_files(root, kind) for r in pq.read_table(p).to_pylist()]


def test_a_batch_is_accepted_in_part_with_every_rejection_named(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        b = c.app.state.service.bundle
        item = str(b.catalog.item_ids[0])
        now = datetime.now(UTC)
        batch = [{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": item},  # ok
                 {"type": "click", "session_id": "s1"},  # no item
                 {"type": "teleport", "user_id": "u1", "item_id": item},  # no such type
                 {"type": "view", "item_id": item},  # nobody
                 {"type": "view", "user_id": "u1", "item_id": item, "ts": (now + timedelta(hours=2)).isoformat()},
                 {"type": "view", "user_id": "u1", "item_id": item, "ts": (now - timedelta(days=30)).isoformat()},
                 {"type": "cart", "user_id": "u1", "item_id": "not-in-the-catalog"},  # kept, flagged
                 {"type": "click", "user_id": "u1", "item_id": item, "rec_id": "rforged.xxxx", "position": 1},  # kept
                 {"type": "view", "user_id": "u1", "item_id": item, "colour": "red"},  # unknown field
                 {"type": "purchase", "user_id": "u1", "item_id": item, "price": -3}]
        r = c.post("/v1/events", json={"events": batch})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["accepted"] == 3 and got["duplicates"] == 0
        reasons = {x["index"]: x["reason"] for x in got["rejected"]}
        assert sorted(reasons) == [1, 2, 3, 4, 5, 8, 9]
        assert "needs an item_id" in reasons[1] and "type" in reasons[2] and "user_id or a session_id" in reasons[3]
        assert "skew" in reasons[4] and "skew" in reasons[5] and "colour" in reasons[8] and "price" in reasons[9]
        assert got["unknown_items"] == [6] and got["unattributed"] == [7]
        logged = _records(artifacts, "events")  # acknowledged: already on disk
        assert [r["event_id"] for r in logged][0] == "e1" and len(logged) == 3
        assert logged[1]["known_item"] is False and logged[2]["rec_ok"] is False


def test_a_retried_batch_counts_once(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        item = str(c.app.state.service.bundle.catalog.item_ids[1])
        batch = {"events": [{"event_id": f"r{i}", "type": "view", "session_id": "s9", "item_id": item}
                            for i in range(5)]}
        assert c.post("/v1/events", json=batch).json()["accepted"] == 5
        again = c.post("/v1/events", json=batch).json()
        assert again["accepted"] == 0 and again["duplicates"] == 5
    with make_client(artifacts, events=True) as c:  # a restarted worker remembers what it acknowledged
        assert c.post("/v1/events", json=batch).json()["duplicates"] == 5
    assert sorted(r["event_id"] for r in _records(artifacts, "events")) == [f"r{i}" for i in range(5)]


def test_a_backlog_or_a_failing_disk_is_a_503_and_nothing_is_kept(artifacts: Path, monkeypatch) -> None:
    with make_client(artifacts, events=True) as c:
        state = c.app.state.service
        item = str(state.bundle.catalog.item_ids[0])
        ev = {"events": [{"event_id": "x1", "type": "view", "user_id": "u", "item_id": item}]}

        def full(lines):
            raise BacklogError("200,000 events records waiting for the disk")

        monkeypatch.setattr(state.event_writer, "append", full)
        r = c.post("/v1/events", json=ev)
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "nothing" in r.json()["detail"]
        monkeypatch.undo()

        class Broken:
            def write(self, data):
                raise OSError(28, "No space left on device")

            def __getattr__(self, name):
                return lambda *a: 0

        real = state.event_writer.f
        state.event_writer.f = Broken()
        r = c.post("/v1/events", json=ev)
        assert r.status_code == 503 and "No space left" in r.json()["detail"]
        state.event_writer.f = real
        assert c.post("/v1/events", json=ev).json()["accepted"] == 1  # the same event, once the disk is back
    assert [r["event_id"] for r in _records(artifacts, "events")] == ["x1"]


def test_ga4_events_arrive_through_the_mapping_file(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        b = c.app.state.service.bundle
        a, z = str(b.catalog.item_ids[0]), str(b.catalog.item_ids[1])
        rec = c.post("/v1/recommendations", json={"k": 3, "session_id": "g1"}).json()["rec_id"]
        body = {"client_id": "g1", "timestamp_micros": int(time.time() * 1e6),
                "events": [{"name": "view_item_list", "params": {"rec_id": rec, "items": [{"item_id": a, "index": 0}]}},
                           {"name": "select_item", "params": {"rec_id": rec, "items": [{"item_id": a, "index": 0}]}},
                           {"name": "add_to_cart", "params": {"items": [{"item_id": z, "price": 9.5, "quantity": 2}]}},
                           {"name": "purchase", "params": {"transaction_id": "o1",
                                                           "items": [{"item_id": z, "price": 9.5, "quantity": 2}]}},
                           {"name": "page_view", "params": {}}]}  # not in the mapping: dropped
        got = c.post("/v1/events/ga4", json=body).json()
        assert got["accepted"] == 4 and got["rejected"] == []
    logged = _records(artifacts, "events")
    assert [r["type"] for r in logged] == ["list_view", "click", "cart", "purchase"]
    assert logged[1]["position"] == 1 and logged[1]["rec_ok"] is True and logged[1]["session_id"] == "g1"
    assert logged[3]["order_id"] == "o1" and logged[3]["price"] == 9.5 and logged[3]["quantity"] == 2


def test_every_answer_carries_a_rec_id_naming_the_list_it_served(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        b = c.app.state.service.bundle
        user = b.shoppers.with_history(1)[0]
        out = c.post("/v1/recommendations", json={"user_id": user, "k": 5, "placement": "home"}).json()
        sim = c.get(f"/v1/items/{b.catalog.item_ids[0]}/similar", params={"k": 4, "placement": "product"}).json()
        tokens = c.app.state.service.served.tokens
        assert tokens.verify(out["rec_id"]) and tokens.verify(sim["rec_id"]) and out["rec_id"] != sim["rec_id"]
        assert not tokens.verify(out["rec_id"][:-1] + ("A" if out["rec_id"][-1] != "A" else "B"))
        eventually(lambda: len({r["rec_id"] for r in _records(artifacts, "served")}) == 2)
    served = {r["rec_id"]: r for r in _records(artifacts, "served")}
    home = served[out["rec_id"]]
    assert home["placement"] == "home" and home["version"] == out["bundle_version"] and home["route"] == \
        "recommendations" and home["shopper"] and user not in str(home)  # the shopper's key is a salted hash
    assert [i["item_id"] for i in home["items"]] == [i["item_id"] for i in out["items"]]
    assert [i["position"] for i in home["items"]] == [1, 2, 3, 4, 5]
    assert all(i["channels"] and i["pre_rank"] is not None for i in home["items"])  # rank before the rules
    assert served[sim["rec_id"]]["placement"] == "product" and served[sim["rec_id"]]["route"] == "similar-behaviour"


def test_a_sessions_events_reach_the_next_recommendation_in_another_worker_within_a_second(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as a, make_client(artifacts, events=True) as b:
        bundle = a.app.state.service.bundle
        item = str(bundle.catalog.item_ids[int(bundle.popular[-1])])  # a product nobody is shown first
        body = {"k": 10, "session_id": "live-1", "in_stock_only": False}
        before = b.post("/v1/recommendations", json=body).json()
        assert before["fallback"] == "popular"  # nothing known of this session yet
        t = time.perf_counter()
        assert a.post("/v1/events", json={"events": [{"type": "click", "session_id": "live-1",
                                                      "item_id": item}]}).json()["accepted"] == 1

        def b_knows() -> bool:
            return b.post("/v1/recommendations", json=body).json()["fallback"] is None  # the model path now

        eventually(b_knows, timeout=3.0)
        assert time.perf_counter() - t < 1.0


def test_a_session_later_joined_to_a_shopper_becomes_theirs(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        state = c.app.state.service
        item = str(state.bundle.catalog.item_ids[3])
        c.post("/v1/events", json={"events": [{"type": "view", "session_id": "anon-7", "item_id": item}]})
        assert state.realtime.recent(None, "anon-7")[0] == [item]
        c.post("/v1/events", json={"events": [{"type": "view", "session_id": "anon-7", "user_id": "new-shopper",
                                               "item_id": item}]})  # the login
        assert state.realtime.recent("new-shopper", None)[0][:1] == [item]
        assert state.realtime.recent(None, "anon-7")[0][:1] == [item]  # the session now reads the shopper's
        c.post("/v1/events", json={"events": [{"type": "purchase", "user_id": "new-shopper", "item_id": item}]})
        page = c.post("/v1/recommendations", json={"user_id": "new-shopper", "k": 20, "in_stock_only": False}).json()
        assert item not in [i["item_id"] for i in page["items"]]  # bought since the bundle: not recommended


def test_erasing_a_shopper_removes_their_events_lists_and_state(artifacts: Path) -> None:
    with make_client(artifacts, events=True, events_grace_s=0.0) as c:
        state = c.app.state.service
        item = str(state.bundle.catalog.item_ids[2])
        c.post("/v1/events", json={"events": [{"type": "view", "session_id": "sx", "user_id": "gone", "item_id": item},
                                              {"type": "view", "user_id": "stays", "item_id": item}]})
        c.post("/v1/recommendations", json={"user_id": "gone", "session_id": "sx", "k": 3})
        time.sleep(0.3)
        for w in (state.event_writer, state.served_writer):
            w.append([]).result()
            w._rotate()  # close the segments: convert them, as rotation would
        state.janitor.run_once()
        assert any(r["user_id"] == "gone" for r in _records(artifacts, "events"))
        assert c.delete("/admin/shoppers/gone").status_code == 401
        r = c.delete("/admin/shoppers/gone", headers=AUTH)
        assert r.status_code == 200 and r.json()["sessions"] == 1 and r.json()["rows_removed"] >= 2
        assert [r["user_id"] for r in _records(artifacts, "events")] == ["stays"]
        assert state.realtime.recent("gone", "sx") == ([], [], [])
        gone_key = shopper_hash(state.served.salt, "gone", None)
        assert all(r["shopper"] != gone_key for r in _records(artifacts, "served"))


@pytest.mark.parametrize("bad", [{"events": []}, {"events": [{}] * 1001}, {"event": []}, []])
def test_malformed_batches_are_422(artifacts: Path, bad) -> None:
    with make_client(artifacts, events=True) as c:
        assert c.post("/v1/events", json=bad).status_code == 422
