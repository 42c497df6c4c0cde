"""Tonight's dataset learns from what shoppers did online (docs/online.md): the service's event log
(bundle/logs.py) enters the dataset through the incremental import (pipelines/incremental.py).

- Only closed segments are read (converted first when no service did: a live writer's open segment
  is left to it), and with a bundle store, every replica's too: their Parquet files under the store's
  ``events/`` are copied into the local log first (names checked: the store is data).
- Each event counts once (``event_id``); a click is a view of the item; ``list_view`` carries no
  item and is left out; an event with only a session id belongs to the shopper some other event of
  that session named (the latest), else it is anonymous and left out.
- An item the dataset's catalog does not know yet is left out tonight and read again on a later
  night (the log is re-read whole, within its retention; the import is idempotent: an event already
  in the dataset — same shopper, item, type and time — is skipped).
- Erased shoppers (the log's tombstones) leave the dataset too: their events and their user row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from bundle.log_erasure import erased, erased_filter
from bundle.log_sql import events_sql
from bundle.logs import Janitor, keys, parquet_files, shopper_hash
from pipelines.incremental import append_export
from pipelines.tables import read_table, write_table

log = logging.getLogger(__name__)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}\.parquet$")


@dataclass
class LogImport:
    from_store: int = 0  # segments copied from the bundle store (other replicas')
    segments: int = 0  # converted event segments read
    logged: int = 0  # distinct events of the types that enter the dataset
    anonymous: int = 0  # no user id and no linked session
    unknown_items: int = 0  # the catalog does not know the item yet (read again later)
    added: int = 0
    already_there: int = 0
    rejected: int = 0
    erased_users: int = 0
    erased_events: int = 0


def pull_store_segments(root: Path, url: str) -> list[Path]:
    """Copy the bundle store's converted event segments this log lacks; returns the new files."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(url)
    prefix = f"{base.rstrip('/')}/events/events"
    if not fs.exists(prefix):
        return []
    new = []
    for remote in fs.find(prefix):
        day, name = remote.rsplit("/", 2)[-2:]
        if not (DAY.match(day) and NAME.match(name)):
            log.warning("bundle store: %s is not a segment name; skipped", remote)
            continue
        dest = root / "events" / day / name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".part")
            fs.get_file(remote, str(tmp))
            tmp.replace(dest)
            new.append(dest)
    return new


def forget_erased(data: Path, root: Path) -> tuple[int, int]:
    """Remove erased shoppers (the log's tombstones) from the dataset: (users, events) removed."""
    gone = erased(root)
    if not gone:
        return 0, 0
    salt = keys(root)["salt"]
    users = read_table(data / "users.parquet")
    hit = users["user_id"].map(lambda u: shopper_hash(salt, u, None) in gone).to_numpy(bool)
    if not hit.any():
        return 0, 0
    ids = set(users.loc[hit, "user_id"])
    events = read_table(data / "events.parquet")
    keep = ~events["user_id"].isin(ids).to_numpy()
    write_table(events[keep].reset_index(drop=True), data / "events.parquet")  # the events first: a crash
    write_table(users[~hit].reset_index(drop=True), data / "users.parquet")  # between leaves no orphan
    log.info("erasure: %d shoppers and %d events removed from %s", len(ids), int((~keep).sum()), data)
    return len(ids), int((~keep).sum())


def logged_events(root: Path) -> pd.DataFrame:
    """The log's events as canonical rows (user_id, item_id, event, ts), once each, sessions resolved;
    a column ``user_id`` null where the shopper stays anonymous."""
    sql = events_sql(root, converted_only=True)
    return duckdb.connect().execute(f"""
        WITH raw AS ({sql}),
        once AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY received) AS rn
                                FROM raw) WHERE rn = 1 AND type IN ('view', 'click', 'cart', 'purchase')),
        link AS (SELECT session_id, arg_max(user_id, ts) AS linked FROM raw
                 WHERE user_id IS NOT NULL AND session_id IS NOT NULL GROUP BY session_id)
        SELECT coalesce(o.user_id, l.linked) AS user_id, o.item_id,
               CASE WHEN o.type = 'click' THEN 'view' ELSE o.type END AS event, o.ts
        FROM once o LEFT JOIN link l USING (session_id)
        ORDER BY o.ts, o.event_id""").df()


def import_log(data: Path, root: Path, *, store: str | None = None, max_bad_share: float = 0.05) -> LogImport:
    """The event log under ``root`` (ARTIFACTS/events) into the dataset at ``data``."""
    rep = LogImport()
    if (root / "closed").is_dir() or (root / "open").is_dir():
        # closed segments and what dead writers left, converted (and pushed) now: no grace period (a live
        # worker tailing a segment closed this very second may miss its last events for real time only)
        Janitor(root, grace_s=0, retention_days=None, store=store, erased=lambda: erased_filter(root)).run_once()
    if store:
        rep.from_store = len(pull_store_segments(root, store))
    rep.erased_users, rep.erased_events = forget_erased(data, root)
    rep.segments = len(parquet_files(root, "events"))
    if not rep.segments:
        return rep
    ev = logged_events(root)
    rep.logged = len(ev)
    anonymous = ev["user_id"].isna()
    items = read_table(data / "items.parquet", columns=["item_id"])["item_id"]
    unknown = ~anonymous & ~ev["item_id"].isin(items)
    rep.anonymous, rep.unknown_items = int(anonymous.sum()), int(unknown.sum())
    ev = ev[~anonymous & ~unknown].assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True))
    if len(ev):
        _, app = append_export(data, None, None, ev.reset_index(drop=True), None, max_bad_share)
        rep.added, rep.already_there, rep.rejected = app.events_added, app.events_already_there, app.rejected
    log.info("event log -> %s: %s", data, rep)
    return rep
