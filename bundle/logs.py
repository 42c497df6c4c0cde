"""The service's own logs of what it saw (docs/online.md): shoppers' events and the lists it served,
under ``ARTIFACTS/events/``. The service writes them (serving/event_intake.py, serving/served_log.py),
the console reads them (serving/online.py) and the nightly job imports them (pipelines/log_import.py):
one module owns the layout.

    ARTIFACTS/events/open/<kind>-<writer>-<start>.jsonl     being written: one per kind and process,
                                                            flock'ed by its writer
    ARTIFACTS/events/closed/<kind>-<writer>-<start>.jsonl   closed, not yet converted
    ARTIFACTS/events/<kind>/<YYYY-MM-DD>/<writer>-<start>.parquet   closed and converted (columnar)
    ARTIFACTS/events/erased.jsonl                           erasure tombstones (salted shopper keys)
    ARTIFACTS/events/keys.json                              the rec_id key and the shopper-key salt (0600)

Durability: ``SegmentWriter.append`` returns a future that resolves only after the records are
written *and* fsync'ed; a commit thread writes every batch that is waiting and fsyncs once for all
of them (group commit), so many small appends cost one disk flush. A writer that dies leaves its
open segment unlocked: the next writer to start (any process) repairs its torn last line, closes it
and converts it. Nothing acknowledged is lost; a record cut by a crash before its fsync was never
acknowledged.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from common.jsonlines import fsync_dir, read_lines

log = logging.getLogger(__name__)

KINDS = ("events", "served")
EVENT_COLUMNS = {"event_id": pa.string(), "type": pa.string(), "user_id": pa.string(), "session_id": pa.string(),
                 "item_id": pa.string(), "ts": pa.int64(), "received": pa.int64(),  # epoch milliseconds
                 "rec_id": pa.string(), "rec_ok": pa.bool_(), "position": pa.int32(), "placement": pa.string(),
                 "price": pa.float64(), "quantity": pa.int32(), "order_id": pa.string(), "known_item": pa.bool_()}
SERVED_COLUMNS = {"rec_id": pa.string(), "ts": pa.int64(), "route": pa.string(),
                  "placement": pa.string(), "shopper": pa.string(), "version": pa.string(), "variant": pa.string(),
                  "item_id": pa.string(), "position": pa.int32(), "channels": pa.list_(pa.string()),
                  "pre_rank": pa.int32(), "rules": pa.list_(pa.string()), "score": pa.float64(),
                  "team": pa.string(),  # interleaving: the variant that placed the item (serving/interleave.py)
                  "propensity": pa.float64()}  # exploration: P(this item at this position) (serving/off_policy.py)
SCHEMAS = {"events": pa.schema(EVENT_COLUMNS), "served": pa.schema(SERVED_COLUMNS)}


class BacklogError(RuntimeError):
    """The writer has more records waiting than it may hold: the caller answers 503 and the client retries."""


def log_dir(artifacts: Path) -> Path:
    return artifacts / "events"


def writer_name() -> str:
    """This process's name in segment files (host and pid: unique among the writers of one folder)."""
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def keys(root: Path) -> dict[str, str]:
    """The secrets: ``rec_key`` signs rec_ids, ``salt`` hashes shopper keys in the served log. Derived
    from ``VITRINE_EVENTS_SECRET`` when set (replicas on several hosts share it, so a rec_id one minted
    verifies at another and the nightly job reads every replica's log alike); else the folder's own,
    made once (atomically, 0600) and shared by every writer and reader of the folder."""
    if secret := os.environ.get("VITRINE_EVENTS_SECRET"):
        derive = lambda what: hmac.new(secret.encode(), what, hashlib.sha256).hexdigest()  # noqa: E731
        return {"rec_key": derive(b"vitrine rec_id key"), "salt": derive(b"vitrine shopper salt")[:32]}
    path = root / "keys.json"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".keys-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"rec_key": secrets.token_hex(32), "salt": secrets.token_hex(16)}, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # the first writer wins; the others read its keys
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return json.loads(path.read_text())


# ---------------------------------------------------------------------- closed segments -> Parquet


# per item of a served list
ITEM_FIELDS = ("item_id", "position", "channels", "pre_rank", "rules", "score", "team", "propensity")
LINE_SCHEMAS = {"events": SCHEMAS["events"],  # a segment's lines; a served line holds its items as a list
                "served": pa.schema([*(SCHEMAS["served"].field(n) for n in SERVED_COLUMNS if n not in ITEM_FIELDS),
                                     pa.field("items", pa.list_(pa.struct([SCHEMAS["served"].field(n)
                                                                           for n in ITEM_FIELDS])))])}


def _rows(kind: str, records: Iterable[dict]) -> Iterable[dict]:
    if kind == "events":
        yield from records
        return
    for r in records:  # a served list: one row per item it showed
        for it in r.get("items") or []:
            yield {k: r.get(k) for k in SERVED_COLUMNS if k not in ITEM_FIELDS} | {k: it.get(k) for k in ITEM_FIELDS}


def to_table(kind: str, records: list[dict]) -> pa.Table:
    """Records of a segment as a typed table (``ts`` in epoch milliseconds), one row per served item."""
    schema = SCHEMAS[kind]
    rows = list(_rows(kind, records))
    return pa.table({name: pa.array([r.get(name) for r in rows], type=schema.field(name).type)
                     for name in schema.names}, schema=schema)


def read_segment(kind: str, path: Path) -> pa.Table:
    """A JSON-lines segment as a typed table, parsed by Arrow's reader (C++, off the GIL: a 64 MB
    segment converted in the serving process must not stall its requests); a line Arrow cannot read
    sends the whole segment through the careful path, line by line (bad lines skipped)."""
    try:
        t = pajson.read_json(path, parse_options=pajson.ParseOptions(
            explicit_schema=LINE_SCHEMAS[kind], unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        return to_table(kind, read_lines(path)[0])
    if kind == "served":  # one row per item: the list's columns repeated, the items' fields flattened
        items = t["items"].combine_chunks()
        flat = pc.list_flatten(items)
        base = t.drop_columns(["items"]).take(pc.list_parent_indices(items))
        t = pa.table({n: base[n] if n in base.column_names else flat.field(n) for n in SERVED_COLUMNS})
    return t.select(SCHEMAS[kind].names).cast(SCHEMAS[kind])


def write_parquet(table: pa.Table, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def convert(root: Path, segment: Path, drop: Callable[[pa.Table], pa.Table] | None = None) -> Path:
    """A closed JSON-lines segment -> ``<kind>/<day>/<name>.parquet`` (durable), then the segment goes;
    ``drop``: the erasure filter (``erased_filter``)."""
    kind, rest = segment.stem.split("-", 1)
    table = read_segment(kind, segment) if segment.stat().st_size else to_table(kind, [])
    start_ms = int(rest.rsplit("-", 1)[1])
    day = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m-%d")
    dest = root / kind / day / f"{rest}.parquet"
    write_parquet(drop(table) if drop is not None else table, dest)
    segment.unlink()
    return dest


def recover(root: Path) -> list[Path]:
    """Close the open segments whose writers died (their flock is free): cut a torn last line, move
    them to ``closed/``. Returns the segments closed."""
    out = []
    for seg in sorted((root / "open").glob("*.jsonl")) if (root / "open").is_dir() else []:
        with open(seg, "rb+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):  # the record a crash cut mid-write: never acknowledged
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
                log.warning("%s: cut a torn last record (%d bytes)", seg.name, len(data) - end)
            (root / "closed").mkdir(exist_ok=True)
            os.replace(seg, root / "closed" / seg.name)
            out.append(root / "closed" / seg.name)
    return out


class SegmentWriter:
    """One process's durable writer of one kind (see the module docstring)."""

    def __init__(self, root: Path, kind: str, *, max_bytes: int = 64 << 20, max_age_s: float = 300.0,
                 max_pending: int = 200_000, durable: bool = True, grace_s: float = 5.0,
                 on_closed: Callable[[Path], None] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown log kind {kind!r}")
        self.root, self.kind = root, kind
        self.max_bytes, self.max_age_s, self.max_pending, self.durable = max_bytes, max_age_s, max_pending, durable
        self.grace_s, self.on_closed = grace_s, on_closed
        self.pending: list[tuple[list[bytes], Future]] = []
        self.n_pending = 0
        self.cv = threading.Condition()
        self.stopping = False
        self.broken: OSError | None = None  # the last write failed (disk full): appends fail until one succeeds
        (root / "open").mkdir(parents=True, exist_ok=True)
        self.f = None
        self.names: set[str] = set()
        self._open()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"log-{kind}")
        self.thread.start()

    def _open(self) -> None:
        self.start = time.time()
        self.path = self.root / "open" / f"{self.kind}-{writer_name()}-{int(self.start * 1000)}.jsonl"
        self.names.add(self.path.name)  # this writer's segments (a reader in the same process may skip them)
        self.f = open(self.path, "ab")  # noqa: SIM115 - held open for the segment's life
        fcntl.flock(self.f.fileno(), fcntl.LOCK_EX)  # ours while we live; the kernel frees it if we die
        fsync_dir(self.path.parent)
        self.size = 0

    def append(self, lines: list[bytes]) -> Future:
        """``lines`` (each a JSON record ending in a newline) written and fsync'ed together with
        whatever else is waiting; the future's result is how many were written. ``BacklogError`` at once
        when too much is waiting (the disk is slower than the traffic)."""
        fut: Future = Future()
        with self.cv:
            if self.n_pending + len(lines) > self.max_pending:
                raise BacklogError(f"{self.n_pending:,} {self.kind} records waiting for the disk")
            self.pending.append((lines, fut))
            self.n_pending += len(lines)
            self.cv.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self.cv:
                if not self.pending and not self.stopping:
                    self.cv.wait(timeout=min(1.0, self.max_age_s))
                batch, self.pending, self.n_pending = self.pending, [], 0
                stopping = self.stopping
            if batch:
                self._commit(batch)
            if self.size and (self.size >= self.max_bytes or time.time() - self.start >= self.max_age_s or stopping):
                self._rotate()
            if stopping and not self.pending:
                if not self.size:  # nothing was ever written to it: no empty segment left behind
                    self.f.close()
                    self.path.unlink(missing_ok=True)
                return

    def _commit(self, batch: list[tuple[list[bytes], Future]]) -> None:
        data = b"".join(line for lines, _ in batch for line in lines)
        try:
            self.f.write(data)
            self.f.flush()
            if self.durable:
                os.fsync(self.f.fileno())
        except OSError as e:  # disk full, I/O error: nothing of this batch is acknowledged
            self.broken = e
            try:  # leave no partial record behind for the next commit to follow
                self.f.truncate(self.size)
                self.f.seek(self.size)
            except OSError:
                pass
            for _, fut in batch:
                fut.set_exception(e)
            return
        self.broken = None
        self.size += len(data)
        for lines, fut in batch:
            fut.set_result(len(lines))

    def _rotate(self) -> None:
        """Close this segment (to ``closed/``: tailers still read it there) and open the next one."""
        old, f = self.path, self.f
        (self.root / "closed").mkdir(exist_ok=True)
        os.replace(old, self.root / "closed" / old.name)
        fsync_dir(self.root / "closed")
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()
        if not self.stopping:
            self._open()
        if self.on_closed is not None:
            self.on_closed(self.root / "closed" / old.name)

    def close(self) -> None:
        """Write what waits, close the segment; the janitor converts it."""
        with self.cv:
            self.stopping = True
            self.cv.notify()
        self.thread.join(30)


class Janitor:
    """Converts closed segments to Parquet after ``grace_s`` (tailers finish reading them first),
    applies erasures while doing so, pushes the Parquet files to a bundle store when one is set, and
    deletes partitions older than ``retention_days`` (None: the service's janitors do that). One per
    process; a file is converted by whichever process takes its lock first."""

    def __init__(self, root: Path, *, grace_s: float = 5.0, retention_days: int | None = 90, store: str | None = None,
                 erased: Callable[[], Callable[[dict], bool]] | None = None) -> None:
        self.root, self.grace_s, self.retention_days, self.store = root, grace_s, retention_days, store
        self.erased = erased

    def run_once(self, now: float | None = None) -> list[Path]:
        now = now or time.time()
        recover(self.root)
        done = []
        for seg in sorted((self.root / "closed").glob("*.jsonl")) if (self.root / "closed").is_dir() else []:
            try:
                if now - seg.stat().st_mtime < self.grace_s:
                    continue
                with open(seg, "rb") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # another process converts it
                    if not seg.exists():
                        continue
                    dest = convert(self.root, seg, self.erased() if self.erased else None)
            except FileNotFoundError:
                continue
            done.append(dest)
            if self.store:
                push_segment(self.root, dest, self.store)
        if self.retention_days is not None:
            self._expire(now)
        return done

    def _expire(self, now: float) -> None:
        cutoff = datetime.fromtimestamp(now - self.retention_days * 86400, UTC).strftime("%Y-%m-%d")
        for kind in KINDS:
            for day in sorted((self.root / kind).iterdir()) if (self.root / kind).is_dir() else []:
                if day.is_dir() and day.name < cutoff:
                    for p in day.glob("*.parquet"):
                        p.unlink()
                    day.rmdir()
                    log.info("retention: removed %s/%s", kind, day.name)


def push_segment(root: Path, path: Path, url: str) -> None:
    """A converted segment to the bundle store's ``events/`` (so the nightly job reads every replica's)."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(url)
    dest = f"{base.rstrip('/')}/events/{path.relative_to(root).as_posix()}"
    fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
    fs.put_file(str(path), dest)


def parquet_files(root: Path, kind: str) -> list[Path]:
    return sorted((root / kind).glob("*/*.parquet")) if (root / kind).is_dir() else []


def jsonl_files(root: Path, kind: str) -> list[Path]:
    return sorted(p for d in ("open", "closed") if (root / d).is_dir() for p in (root / d).glob(f"{kind}-*.jsonl"))


# ---------------------------------------------------------------------- shoppers' keys and erasure


def shopper_hash(salt: str, user_id: str | None, session_id: str | None) -> str | None:
    """The served log's pseudonymous key of a shopper (``u:`` + user id, else ``s:`` + session id),
    salted so a log leaked alone names no one. The same expression in SQL: serving/online.py."""
    key = f"u:{user_id}" if user_id else f"s:{session_id}" if session_id else None
    return None if key is None else hashlib.sha256((salt + key).encode()).hexdigest()[:16]
