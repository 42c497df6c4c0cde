"""Erasure of one shopper from the service's logs (docs/online.md): tombstones (salted shopper keys,
``ARTIFACTS/events/erased.jsonl``) written first, then every converted segment rewritten without
their rows; segments converted later, the online metrics, the real-time state and the nightly import
all honour the tombstones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bundle.logs import KINDS, jsonl_files, keys, parquet_files, shopper_hash, write_parquet
from common.jsonlines import append_line, read_lines


def erased(root: Path) -> set[str]:
    """Every shopper key erased so far (the tombstones)."""
    return {r["shopper"] for r in read_lines(root / "erased.jsonl")[0] if isinstance(r, dict) and "shopper" in r}


def erased_filter(root: Path) -> Callable[[pa.Table], pa.Table]:
    """A table filter: the log rows (events or served items) of erased shoppers removed."""
    gone = erased(root)
    if not gone:
        return lambda t: t
    salt, hashes = keys(root)["salt"], pa.array(sorted(gone), pa.string())

    def hit(col: pa.ChunkedArray, user: bool) -> pa.ChunkedArray:  # hashes each distinct id once
        ids = [i for i in pc.unique(col).to_pylist() if i]
        bad = [i for i in ids if shopper_hash(salt, i if user else None, None if user else i) in gone]
        return pc.is_in(col, value_set=pa.array(bad, pa.string()))

    def keep(t: pa.Table) -> pa.Table:
        if "shopper" in t.column_names:
            mask = pc.is_in(t["shopper"], value_set=hashes)
        else:
            mask = pc.or_(hit(t["user_id"], True), hit(t["session_id"], False))
        return t.filter(pc.invert(pc.fill_null(mask, False)))

    return keep


def erase(root: Path, hashes: set[str]) -> int:
    """Tombstones for ``hashes`` (written durably first: a converter that runs later drops them too),
    then every converted segment rewritten without their rows. Returns the rows removed."""
    for h in sorted(hashes):
        append_line(root / "erased.jsonl", {"shopper": h, "at": datetime.now(UTC).isoformat()})
    keep, removed = erased_filter(root), 0
    for kind in KINDS:
        for path in parquet_files(root, kind):
            table = pq.read_table(path)
            kept = keep(table)
            if kept.num_rows < table.num_rows:
                removed += table.num_rows - kept.num_rows
                write_parquet(kept, path)
    return removed


def sessions_of(root: Path, user_id: str) -> set[str]:
    """The session ids any logged event joined to ``user_id`` (erasure takes them with the shopper)."""
    out = set()
    for p in parquet_files(root, "events"):
        t = pq.read_table(p, columns=["user_id", "session_id"]).to_pylist()
        out |= {r["session_id"] for r in t if r["user_id"] == user_id and r["session_id"]}
    for p in jsonl_files(root, "events"):
        out |= {r.get("session_id") for r in read_lines(p)[0] if isinstance(r, dict) and r.get("user_id") == user_id
                and r.get("session_id")}
    return out
