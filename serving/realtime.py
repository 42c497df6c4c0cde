"""Real time: what a known shopper or a session did in the last moments, in every worker within a
second, without the client sending its session clicks (docs/online.md).

Each worker tails the events log's JSON-lines segments of every worker on the host (bundle/logs.py:
``open/`` and ``closed/``; a closed one is kept ``grace_s`` before it is converted, so a tail never
misses a segment's end) every ``poll_s``, and applies its own accepted events at once (its own
segments are never read back: re-parsing every event it wrote cost a sixth of the ingest path). The state is
bounded: the last ``max_events`` items per shopper, the ``max_shoppers`` most recently active
shoppers (the least recently used go first). A session that later carries a user_id is linked to
it: its items become the shopper's.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict, deque
from itertools import islice
from pathlib import Path

from bundle.log_erasure import erased
from bundle.logs import SegmentWriter, jsonl_files, keys, shopper_hash
from common.state_logs import START, StateLogs, StateUnavailableError

log = logging.getLogger(__name__)


class RecentEvents:
    def __init__(self, root: Path, *, max_events: int = 20, max_shoppers: int = 100_000,
                 own: SegmentWriter | None = None) -> None:
        self.root, self.max_events, self.max_shoppers = root, max_events, max_shoppers
        self.items: OrderedDict[str, deque[tuple[str, str]]] = OrderedDict()  # key -> (item_id, type), latest last
        self.links: OrderedDict[str, str] = OrderedDict()  # session id -> user id
        self.applied: OrderedDict[str, None] = OrderedDict()  # event ids applied (own events come back by tail)
        self.offsets: dict[str, int] = {}
        self.own = own  # this worker's writer: its segments are applied as accepted, never read back
        self.erased_seen: set[str] = set()
        self.salt = keys(root)["salt"]
        self.lock = threading.Lock()

    @staticmethod
    def _key(user_id: str | None, session_id: str | None) -> str | None:
        return f"u:{user_id}" if user_id else f"s:{session_id}" if session_id else None

    def apply(self, records: list[dict]) -> None:
        """Accepted events (the log's records), in order."""
        with self.lock:
            for r in records:
                eid = r.get("event_id")
                if eid in self.applied:
                    continue
                self.applied[eid] = None
                if len(self.applied) > 4 * self.max_shoppers:
                    self.applied.popitem(last=False)
                user, session = r.get("user_id"), r.get("session_id")
                if user and session and self.links.get(session) != user:
                    self._link(session, user)
                if not r.get("item_id") or r.get("type") == "list_view":
                    continue
                key = self._key(user or self.links.get(session), None if user else session)
                dq = self.items.get(key)
                if dq is None:
                    dq = self.items[key] = deque(maxlen=self.max_events)
                    if len(self.items) > self.max_shoppers:
                        self.items.popitem(last=False)  # the least recently active shopper
                else:
                    self.items.move_to_end(key)
                dq.append((r["item_id"], r["type"]))

    def _link(self, session: str, user: str) -> None:
        self.links[session] = user
        if len(self.links) > self.max_shoppers:
            self.links.popitem(last=False)
        moved = self.items.pop(f"s:{session}", None)  # the session's items become the shopper's
        if moved:
            dq = self.items.setdefault(f"u:{user}", deque(maxlen=self.max_events))
            dq.extend(moved)

    def recent(self, user_id: str | None, session_id: str | None) -> tuple[list[str], list[str], list[str]]:
        """(item ids, most recent first; purchased item ids; item ids in an open cart: carted and not
        bought since) of this shopper's or session's live events."""
        user = user_id or (self.links.get(session_id) if session_id else None)
        keys_ = [k for k in (self._key(user, None), self._key(None, session_id) if not user_id else None) if k]
        with self.lock:
            got = [e for k in keys_ for e in self.items.get(k, ())]
        if not got:
            return [], [], []
        last = {i: t for i, t in got if t in ("cart", "purchase")}  # each item's latest cart or purchase
        return [i for i, _ in reversed(got)], [i for i, t in got if t == "purchase"], \
            [i for i, t in last.items() if t == "cart"]

    def forget(self, user_id: str, sessions: list[str]) -> None:
        with self.lock:
            self.items.pop(f"u:{user_id}", None)
            for s in sessions:
                self.items.pop(f"s:{s}", None)
                self.links.pop(s, None)

    def tail(self) -> int:
        """Apply what every worker logged since the last call; drop shoppers erased meanwhile."""
        n = 0
        live = set()
        for path in jsonl_files(self.root, "events"):
            if self.own is not None and path.name in self.own.names:
                continue
            live.add(path.name)
            start = self.offsets.get(path.name, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # complete lines only: a record being written is read next time
            if end:
                records = []
                for line in data[:end].splitlines():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue
                self.apply(records)
                n += len(records)
            # a segment moved from open/ to closed/ keeps its name: its offset carries over
            self.offsets[path.name] = start + end
        for name in set(self.offsets) - live:
            del self.offsets[name]
        gone = erased(self.root) - self.erased_seen
        if gone:
            self._forget_hashes(gone)
            self.erased_seen |= gone
        return n

    def _forget_hashes(self, hashes: set[str]) -> None:
        with self.lock:
            for key in [k for k in self.items if shopper_hash(self.salt, *((k[2:], None) if k[0] == "u"
                                                                           else (None, k[2:]))) in hashes]:
                del self.items[key]


class SharedEvents:
    """Accepted events fanned out to the other replicas through the shared store (a Redis stream;
    common/state_logs.py), which each replica reads into its own real-time state. The events log on
    this host stays the record (an event is acknowledged once it is there); what the store could not
    take waits here, in order, and goes out when it answers again (``max_pending``, oldest dropped
    past it, with a warning)."""

    NAME = "events/recent"

    def __init__(self, state: StateLogs, realtime: RecentEvents, *, keep: int = 100_000,
                 max_pending: int = 100_000) -> None:
        self.state, self.realtime, self.keep = state, realtime, keep
        self.pending: deque[dict] = deque(maxlen=max_pending)
        self.cursor = START  # a new replica starts from what the stream still holds (about ``keep`` events)
        self.lock = threading.Lock()

    def publish(self, records: list[dict]) -> None:
        """Queued for the next :meth:`follow` (every ``realtime_poll_s``): no store call on the request path."""
        with self.lock:
            if len(self.pending) + len(records) > (self.pending.maxlen or 0):
                log.warning("shared events backlog full: the oldest are dropped from the fan-out (not the log)")
            self.pending.extend(records)

    def _flush(self) -> None:
        """Send the pending events oldest first, 1,000 per round trip. The lock is held only to copy and
        drop, never over the network: ``publish`` runs on the event loop."""
        while True:
            with self.lock:
                batch = list(islice(self.pending, 1000))
            if not batch:
                return
            try:
                self.state.append_many(self.NAME, batch, maxlen=self.keep)
            except StateUnavailableError:
                return  # kept; the next follow retries
            with self.lock:  # publishers add on the right (past max_pending the deque drops oldest: dropped)
                for _ in batch:
                    self.pending.popleft()

    def follow(self) -> int:
        """Send what is pending, then apply what every replica published since the last call (this
        replica's own come back and are skipped by event id)."""
        self._flush()
        try:
            records, self.cursor = self.state.read_from(self.NAME, self.cursor)
        except StateUnavailableError:
            return 0
        self.realtime.apply(records)
        return len(records)
