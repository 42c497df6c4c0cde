"""The service's event log into the dataset (pipelines/log_import.py): once per event_id, clicks as
views, sessions resolved to shoppers, anonymous and not-yet-known items left out, idempotent,
erasures applied to the dataset, other replicas' segments read from the bundle store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bundle.log_erasure import erase
from bundle.logs import convert, keys, push_segment, shopper_hash
from pipelines.log_import import import_log
from pipelines.tables import read_dataset

T = 1_790_000_000_000  # epoch ms


@pytest.fixture
def shop(tiny_shop: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "shop"
    shutil.copytree(tiny_shop, dst)
    return dst


def _segment(root: Path, events: list[dict], name: str = "w-1") -> Path:
    """A converted event segment, as the service's janitor leaves it."""
    (root / "closed").mkdir(parents=True, exist_ok=True)
    seg = root / "closed" / f"events-{name}-{T}.jsonl"
    base = {"user_id": None, "session_id": None, "item_id": None, "rec_id": None, "rec_ok": None, "position": None,
            "placement": None, "price": None, "quantity": None, "order_id": None, "known_item": True}
    seg.write_text("".join(json.dumps(base | e | {"received": e["ts"]}) + "\n" for e in events))
    return convert(root, seg)


def _known(shop: Path) -> tuple[list[str], list[str]]:
    d = read_dataset(shop)
    return pd.unique(d["events"]["user_id"]).tolist()[:3], d["items"]["item_id"].tolist()[:3]  # shoppers with history


def test_the_log_enters_the_dataset_once(shop: Path, tmp_path: Path) -> None:
    (u1, u2, _), (i1, i2, i3) = _known(shop)
    root = tmp_path / "events"
    before = len(read_dataset(shop)["events"])
    _segment(root, [
        {"event_id": "e1", "type": "view", "user_id": u1, "item_id": i1, "ts": T},
        {"event_id": "e1", "type": "view", "user_id": u1, "item_id": i1, "ts": T},  # a retried batch
        {"event_id": "e2", "type": "click", "session_id": "s1", "item_id": i2, "ts": T + 1000},  # -> u2 (e3)
        {"event_id": "e3", "type": "cart", "session_id": "s1", "user_id": u2, "item_id": i2, "ts": T + 2000},
        {"event_id": "e4", "type": "list_view", "user_id": u1, "rec_id": "r.x", "ts": T},  # no item: not data
        {"event_id": "e5", "type": "view", "session_id": "s9", "item_id": i3, "ts": T},  # anonymous
        {"event_id": "e6", "type": "view", "user_id": u1, "item_id": "i-not-yet", "ts": T},  # catalog lags
        {"event_id": "e7", "type": "purchase", "user_id": "newbie", "item_id": i3, "price": 9.5, "ts": T + 3000}])
    rep = import_log(shop, root, max_bad_share=0.5)
    assert (rep.segments, rep.logged, rep.added, rep.anonymous, rep.unknown_items) == (1, 6, 4, 1, 1)
    d = read_dataset(shop)
    assert len(d["events"]) == before + 4 and "newbie" in set(d["users"]["user_id"])
    new = d["events"][d["events"]["ts"] >= pd.Timestamp(T, unit="ms", tz="UTC")]
    got = sorted(zip(new["user_id"], new["item_id"], new["event"], strict=True))
    assert got == sorted([(u1, i1, "view"), (u2, i2, "view"), (u2, i2, "cart"), ("newbie", i3, "purchase")])
    again = import_log(shop, root, max_bad_share=0.5)  # tomorrow night, nothing new: nothing added
    assert (again.added, again.already_there) == (0, 4) and len(read_dataset(shop)["events"]) == before + 4


def test_an_erased_shopper_leaves_the_dataset(shop: Path, tmp_path: Path) -> None:
    (u1, u2, _), (i1, _, _) = _known(shop)
    root = tmp_path / "events"
    _segment(root, [{"event_id": "e1", "type": "view", "user_id": u1, "item_id": i1, "ts": T}])
    erase(root, {shopper_hash(keys(root)["salt"], u1, None)})
    rep = import_log(shop, root, max_bad_share=0.5)
    d = read_dataset(shop)
    assert rep.erased_users == 1 and rep.erased_events > 0 and rep.added == 0
    assert u1 not in set(d["users"]["user_id"]) and u1 not in set(d["events"]["user_id"])
    assert u2 in set(d["users"]["user_id"])


def test_other_replicas_segments_come_from_the_store(shop: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VITRINE_EVENTS_SECRET", "one secret for every replica")
    (u1, _, _), (i1, _, _) = _known(shop)
    store = f"file://{tmp_path / 'store'}"
    other = tmp_path / "replica-b" / "events"
    push_segment(other, _segment(other, [{"event_id": "b1", "type": "view", "user_id": u1, "item_id": i1,
                                          "ts": T + 5}], name="hostb-7"), store)
    (tmp_path / "store" / "events" / "events" / "2026-01-01").mkdir(parents=True)
    (tmp_path / "store" / "events" / "events" / "2026-01-01" / "x y;.parquet").write_text("not a segment name")
    root = tmp_path / "events"
    rep = import_log(shop, root, store=store, max_bad_share=0.5)
    assert (rep.from_store, rep.segments, rep.added) == (1, 1, 1)
    assert keys(root) == keys(other)  # the shared secret: rec_ids and shopper keys agree across hosts
    assert import_log(shop, root, store=store, max_bad_share=0.5).from_store == 0
