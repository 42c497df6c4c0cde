"""The service's logs (bundle/logs.py): group commit, torn tails repaired, segments converted by
Arrow's reader exactly as the careful path does, erasures applied to tables, retention."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bundle.log_erasure import erase, erased_filter
from bundle.logs import Janitor, SegmentWriter, convert, keys, read_segment, recover, shopper_hash, to_table
from common.jsonlines import read_lines

EVENTS = [{"event_id": f"e{i}", "type": "click", "user_id": f"u{i % 3}", "session_id": f"s{i % 2}",
           "item_id": f"i{i}", "ts": 1_790_000_000_000 + i, "received": 1_790_000_000_000 + i, "rec_id": None,
           "rec_ok": None, "position": i % 5 + 1, "placement": "home", "price": None, "quantity": None,
           "order_id": None, "known_item": i % 2 == 0} for i in range(12)]
SERVED = [{"rec_id": f"r{n}", "ts": 1_790_000_000_000, "route": "recommendations", "placement": "home",
           "shopper": f"{n:016x}", "version": "v1", "variant": None,
           "items": [{"item_id": f"i{j}", "position": j + 1, "channels": ["tower"] if j % 2 else [],
                      "pre_rank": j + 1 if j else None, "rules": ["pin-1"] if j == 0 else [], "score": 1.0 - j / 10}
                     for j in range(n)]} for n in range(4)]


def _segment(tmp: Path, kind: str, records: list[dict], tail: bytes = b"") -> Path:
    path = tmp / "closed" / f"{kind}-w-1-1790000000000.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)
    return path


@pytest.mark.parametrize(("kind", "records"), [("events", EVENTS), ("served", SERVED)])
def test_arrows_reader_gives_the_careful_paths_table(tmp_path: Path, kind: str, records: list[dict]) -> None:
    fast = read_segment(kind, _segment(tmp_path, kind, records))
    assert fast.equals(to_table(kind, records))
    assert fast.num_rows == (len(records) if kind == "events" else sum(len(r["items"]) for r in records))


def test_a_line_arrow_cannot_read_falls_back_line_by_line(tmp_path: Path) -> None:
    seg = _segment(tmp_path, "events", EVENTS, tail=b"{not json at all\n")
    t = read_segment("events", seg)
    assert t["event_id"].to_pylist() == [e["event_id"] for e in EVENTS]  # the bad line skipped, none lost


def test_group_commit_and_a_torn_tail(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "events", max_age_s=60)
    futures = [w.append([json.dumps(e).encode() + b"\n"]) for e in EVENTS]
    assert sum(f.result(5) for f in futures) == len(EVENTS)  # each resolved once on disk
    w.close()
    seg = next((tmp_path / "closed").glob("events-*.jsonl"))
    open_seg = tmp_path / "open" / seg.name
    open_seg.write_bytes(seg.read_bytes() + b'{"event_id": "cut mid-wri')  # a writer killed mid-record
    seg.unlink()
    assert recover(tmp_path) == [seg]
    assert [r["event_id"] for r in read_lines(seg)[0]] == [e["event_id"] for e in EVENTS]


def test_erasure_reaches_events_and_served_items(tmp_path: Path) -> None:
    salt = keys(tmp_path)["salt"]
    events = convert(tmp_path, _segment(tmp_path, "events", EVENTS))
    gone_user, gone_list = shopper_hash(salt, "u1", None), SERVED[2]["shopper"]
    removed = erase(tmp_path, {gone_user, gone_list})
    left = pq.read_table(events).to_pylist()
    assert "u1" not in {r["user_id"] for r in left} and len(left) == 8 and removed == 4
    served = _segment(tmp_path, "served", SERVED)  # converted after the erasure: the filter applies
    t = pq.read_table(convert(tmp_path, served, erased_filter(tmp_path)))
    assert gone_list not in t["shopper"].to_pylist() and t.num_rows == 0 + 1 + 3


def test_the_janitor_converts_after_the_grace_and_keeps_the_retention(tmp_path: Path) -> None:
    seg = _segment(tmp_path, "events", EVENTS)
    j = Janitor(tmp_path, grace_s=60, retention_days=3650)
    assert j.run_once() == [] and seg.exists()  # within the grace period: tailers may still read it
    (done,) = j.run_once(now=time.time() + 120)
    assert not seg.exists() and pq.read_table(done).num_rows == len(EVENTS)
    Janitor(tmp_path, retention_days=None).run_once()
    assert done.exists()  # the nightly job's janitor never expires anything
    Janitor(tmp_path, retention_days=1).run_once()  # the segment's day (2026-09-21) is past a day's retention
    assert not done.exists()
