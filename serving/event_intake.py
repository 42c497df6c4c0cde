"""The events API's work (docs/online.md): check each event, keep the good ones durably, answer for
every one. A batch is accepted in part: each bad event is rejected with its reason by its index, the
rest are written to the events log (bundle/logs.py) and acknowledged only once they are on disk. An
``event_id`` seen before counts once (a retried batch). A timestamp further from now than the skew
allows is rejected; an item the served catalog does not know is kept and flagged (the catalog may
lag the shop); a rec_id that does not verify is kept and flagged (never credited to a list). When
the disk is behind or full the whole batch is answered 503 with ``Retry-After``: nothing is dropped
silently.

GA4's Measurement Protocol shape is accepted too (``POST /v1/events/ga4``): each event × item
becomes one row of GA4 fields, and a mapping file in the format ``vitrine data import --map`` reads
(``columns``, ``events``, ``timestamps``; serving/ga4-map.yaml) names what each field and event is.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from bundle.logs import SegmentWriter, jsonl_files, parquet_files
from common.jsonlines import read_lines
from serving.event_schemas import Event, GA4Batch, Rejected
from serving.realtime import RecentEvents
from serving.served_log import RecTokens

EVENT = TypeAdapter(Event)
GA4_MAP = Path(__file__).parent / "ga4-map.yaml"
FIELDS = set(Event.model_fields)


def _reason(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


class EventIntake:
    """One per worker: the dedup window, the writer, the tokens, this worker's real-time state."""

    def __init__(self, writer: SegmentWriter, tokens: RecTokens, realtime: RecentEvents, *, max_future_s: float,
                 max_past_s: float, dedup: int = 200_000) -> None:
        self.writer, self.tokens, self.realtime = writer, tokens, realtime
        self.max_future_s, self.max_past_s, self.dedup = max_future_s, max_past_s, dedup
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def remember(self, root: Path, since_s: float = 86400.0) -> int:
        """Seed the dedup window with the event ids logged recently (a restarted worker must not take a
        retry of what it acknowledged before it died for a new event)."""
        ids: list[str] = []
        cutoff = time.time() - since_s
        # JSON-lines first: a segment another worker converts meanwhile is read here, or, once gone,
        # its Parquet file (written before the segment is removed) is listed below
        for p in jsonl_files(root, "events"):
            ids += [r.get("event_id") for r in read_lines(p)[0] if isinstance(r, dict)]
        for p in parquet_files(root, "events"):
            if p.stat().st_mtime >= cutoff:
                ids += pq.read_table(p, columns=["event_id"]).column(0).to_pylist()
        with self.lock:
            for i in ids[-self.dedup:]:
                self.seen[i] = None
        return len(ids)

    def check(self, raw: list, known_items, now: float | None = None) -> tuple[list[dict], list[Rejected], list,
                                                                               list, int]:
        """(records to write, rejected, indexes of unknown items, of unattributed, duplicates).
        ``known_items``: item ids -> whether the catalog knows each (one call per batch)."""
        now = now or time.time()
        records, rejected, unattributed, dups, at = [], [], [], 0, []
        batch_ids: set[str] = set()
        for i, r in enumerate(raw):
            try:
                e = EVENT.validate_python(r)
            except ValidationError as err:
                rejected.append(Rejected(index=i, reason=_reason(err)))
                continue
            ts = now if e.ts is None else (e.ts if e.ts.tzinfo else e.ts.replace(tzinfo=UTC)).timestamp()
            if ts > now + self.max_future_s or ts < now - self.max_past_s:
                when = datetime.fromtimestamp(ts, UTC).isoformat()
                rejected.append(Rejected(index=i, reason=f"ts {when} is outside the accepted skew "
                                         f"(-{self.max_past_s:g} s … +{self.max_future_s:g} s)"))
                continue
            eid = e.event_id or uuid.uuid4().hex
            with self.lock:
                if eid in self.seen or eid in batch_ids:
                    dups += 1
                    continue
            batch_ids.add(eid)
            rec_ok = self.tokens.verify(e.rec_id) if e.rec_id else None
            if e.rec_id and not rec_ok:
                unattributed.append(i)
            at.append(i)
            records.append(e.model_dump(exclude={"ts", "event_id"}) | {
                "event_id": eid, "ts": int(ts * 1000), "received": int(now * 1000), "rec_ok": rec_ok,
                "known_item": None})
        with_item = [j for j, r in enumerate(records) if r["item_id"] is not None]
        known = known_items([records[j]["item_id"] for j in with_item]) if with_item else []
        unknown = []
        for j, k in zip(with_item, known, strict=True):
            records[j]["known_item"] = k
            if k is False:
                unknown.append(at[j])
        return records, rejected, unknown, unattributed, dups

    def write(self, records: list[dict]):
        """The records handed to the log (a future: resolved once durable); their ids join the window."""
        with self.lock:
            for r in records:
                self.seen[r["event_id"]] = None
            while len(self.seen) > self.dedup:
                self.seen.popitem(last=False)
        return self.writer.append([to_json(r) + b"\n" for r in records])

    def forget_ids(self, records: list[dict]) -> None:
        """A write that failed: its ids may come again (the client retries)."""
        with self.lock:
            for r in records:
                self.seen.pop(r["event_id"], None)


def load_ga4_map(path: Path = GA4_MAP) -> dict:
    """The mapping file (``vitrine data import --map``'s format) onto the events API's fields."""
    d = yaml.safe_load(path.read_text()) or {}
    if not isinstance(d, dict) or set(d) - {"columns", "events", "timestamps"}:
        raise ValueError(f"{path}: a mapping has the keys columns, events, timestamps")
    for src, dst in (d.get("columns") or {}).items():
        if dst not in FIELDS:
            raise ValueError(f"{path}: column {src!r} -> {dst!r}: not an event field {sorted(FIELDS)}")
    return {"columns": d.get("columns") or {}, "events": d.get("events") or {}, "timestamps": d.get("timestamps") or {}}


def from_ga4(batch: GA4Batch, mapping: dict) -> list[dict]:
    """Each GA4 event × item as one event of the API (an event the mapping drops is left out; an
    event without items is one row, a list_view's)."""
    cols, names = mapping["columns"], mapping["events"]
    out = []
    for ev in batch.events:
        kind = names.get(ev.name, "drop")
        if kind == "drop":
            continue
        params = dict(ev.params)
        items = params.pop("items", None) or [{}]
        base = {"name": ev.name, "client_id": batch.client_id, "user_id": batch.user_id,
                "timestamp_micros": params.pop("timestamp_micros", batch.timestamp_micros)} | params
        for it in items:
            row = base | (it if isinstance(it, dict) else {})
            e = {dst: row[src] for src, dst in cols.items() if row.get(src) is not None}
            e["type"] = kind
            if isinstance(e.get("ts"), int | float):  # epoch numbers, their unit by magnitude (as the import)
                x = float(e["ts"])
                e["ts"] = datetime.fromtimestamp(x / 1e6 if x > 1e14 else x / 1e3 if x > 1e11 else x, UTC).isoformat()
            if isinstance(e.get("position"), int):
                e["position"] += 1  # GA4's index counts from 0; the API's position from 1
            out.append({k: v for k, v in e.items() if k in FIELDS})
    return out
