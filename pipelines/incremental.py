"""Incremental nights: a shop's new export added to an existing dataset (``vitrine data import
--append``), idempotently.

What an export may hold, and what it does:
- events: appended; an event already in the dataset (same shopper, item, type and time) is skipped,
  so importing the same file twice adds nothing;
- items: a new id is added; a known id is an update of its title, category, price, stock flag or
  photo (its ``created_at`` stays the first one); ``removed: true`` keeps the item (its events are
  history) but marks it out of stock, so the storefront's default filter never shows it;
- users: new ids added (derived from the events when the export has no users file).
Only the export's rows are validated (and only its photos decoded); events may name items and
shoppers already in the dataset. The nightly job sees the new tables through their fingerprint.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipelines.custom import copy_images
from pipelines.tables import read_dataset, write_table
from pipelines.validate import Validated, check_threshold, parse_bools, validate, write_report

log = logging.getLogger(__name__)

ITEM_FIELDS = ("title", "category", "price", "in_stock", "image")
EVENT_KEY = ["user_id", "item_id", "event", "ts"]


@dataclass
class AppendReport:
    items_added: int = 0
    items_updated: int = 0
    items_removed: int = 0
    users_added: int = 0
    events_added: int = 0
    events_already_there: int = 0
    rejected: int = 0


def _removed(items: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Fold a ``removed`` column into ``in_stock``; returns the items and which were removed."""
    if "removed" not in items:
        return items, pd.Series(False, index=items.index)
    gone, _ = parse_bools(items["removed"].fillna("false"), "removed")  # a bad value is not a removal
    items = items.drop(columns="removed")
    if "in_stock" in items:
        items["in_stock"] = items["in_stock"].astype(object).where(~gone, False)
    else:
        items["in_stock"] = ~gone
    return items, gone


def merge_items(current: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Upsert ``new`` (validated) into ``current`` by item_id: (merged, added, updated)."""
    cur = current.set_index("item_id")
    nw = new.set_index("item_id")
    known = nw.index.isin(cur.index)
    upd = nw[known]
    cols = [c for c in ITEM_FIELDS if c in upd.columns]
    before = cur.loc[upd.index, cols]
    changed = ~(before.eq(upd[cols]) | (before.isna() & upd[cols].isna())).all(axis=1)
    cur.loc[upd.index[changed], cols] = upd.loc[changed, cols]
    added = nw[~known].reindex(columns=cur.columns)
    merged = pd.concat([cur, added]).reset_index().astype(current.dtypes.to_dict())
    return merged, int((~known).sum()), int(changed.sum())


def append_export(out: Path, items: pd.DataFrame | None, users: pd.DataFrame | None, events: pd.DataFrame,
                  image_root: Path | None, max_bad_share: float) -> tuple[Validated, AppendReport]:
    """Validate the export against what ``out`` already holds, merge it, write the tables."""
    cur = read_dataset(out)
    rep = AppendReport()
    if items is None:
        items = cur["items"].iloc[:0][["item_id", "category", "price"]]
    items, gone = _removed(items)
    if "created_at" not in items and len(items):
        known = items["item_id"].astype(str).isin(cur["items"]["item_id"])
        first = cur["items"].set_index("item_id")["created_at"]
        items = items.assign(created_at=items["item_id"].astype(str).map(first).where(known))
        fill = pd.to_datetime(events["ts"], errors="coerce", utc=True).min() if len(events) else pd.Timestamp.now("UTC")
        items["created_at"] = items["created_at"].fillna(fill)
    v = validate(items, users, events, image_root=image_root, known_items=cur["items"]["item_id"],
                 known_users=cur["users"]["user_id"], pixel_cache=out / "cache")
    check_threshold(v, max_bad_share)
    if image_root is not None and image_root.resolve() != out.resolve():
        v.items = copy_images(v.items, image_root, out)
    rep.rejected = len(v.rejected)
    rep.items_removed = int(gone.sum())
    merged_items, rep.items_added, rep.items_updated = merge_items(cur["items"], v.items)
    new_users = v.users[~v.users["user_id"].isin(cur["users"]["user_id"])]
    merged_users = pd.concat([cur["users"], new_users], ignore_index=True)
    rep.users_added = len(new_users)
    # An event already in the dataset (same key) is skipped; the export's own repeats are kept, as a
    # first import keeps them. Keys compared by their 64-bit hashes: 1.5M events in well under a second.
    key = lambda df: pd.util.hash_pandas_object(df[EVENT_KEY], index=False).to_numpy()  # noqa: E731
    there = pd.Series(key(v.events)).isin(key(cur["events"])).to_numpy()
    rep.events_already_there, rep.events_added = int(there.sum()), int((~there).sum())
    ev = pd.concat([cur["events"], v.events[~there]], ignore_index=True)
    ev = ev.sort_values(["ts", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    write_report(v, out)
    write_table(merged_items, out / "items.parquet")
    write_table(merged_users, out / "users.parquet")
    write_table(ev, out / "events.parquet")
    log.info("appended to %s: %s", out, asdict(rep))
    return Validated(merged_items, merged_users, ev, v.rejected, v.reports), rep
