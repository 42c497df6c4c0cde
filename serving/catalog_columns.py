"""The catalog's text and time columns in compact per-worker form (docs/scaling.md, "Memory").

Numeric bundle arrays are shared between workers through the page cache (common/mapped.py); the
catalog's strings cannot be, so each worker holds its own, and at a million items one Python
object per id, title, photo path and timestamp (plus a dict over the ids) was the largest part
of a worker's private memory. Here: numpy ``StringDType`` columns (short strings stored inline, 16 bytes each), one
shared string object per category, ``datetime64`` times, and id lookup by binary search over the
ids' sorted hashes with a small dict for products added live.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STR = np.dtypes.StringDType()


def strings(values: pd.Series | list[str]) -> np.ndarray:
    """(N,) StringDType: indexing gives ``str``; ``np.append`` keeps the dtype."""
    return np.array(pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object), dtype=STR)


def labels(values: pd.Series) -> np.ndarray:
    """(N,) object array of few distinct strings, each stored once (category names)."""
    cat = pd.Categorical(values.astype(str))
    names = np.array([str(c) for c in cat.categories], dtype=object)
    return names[cat.codes]  # indexing an object array copies references, not strings


def utc_times(items: pd.DataFrame, column: str = "created_at") -> np.ndarray:
    """(N,) datetime64[us] in UTC, NaT where missing or when the catalog has no such column."""
    if column not in items:
        return np.full(len(items), np.datetime64("NaT"), "datetime64[us]")
    ts = pd.to_datetime(items[column], utc=True)
    return ts.dt.tz_localize(None).to_numpy("datetime64[us]")


def timestamp(value: np.datetime64) -> pd.Timestamp | None:
    """One ``utc_times`` entry as an aware timestamp (None for NaT)."""
    return None if np.isnat(value) else pd.Timestamp(value, tz="UTC")


def _hashes(ids: np.ndarray | list[str]) -> np.ndarray:
    """(N,) uint64 hashes of ids (pandas' stable SipHash of the strings)."""
    return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)


class RowIndex:
    """Item id -> catalog row. The bundle's ids by sorted 64-bit hash (binary search over integers,
    16 bytes per id; numpy's ``searchsorted`` over StringDType itself is a slow scan at 1M ids), each hit checked
    against the id itself; ids added live in a dict (they are few)."""

    def __init__(self, ids: np.ndarray) -> None:
        h = _hashes(ids)
        self._order = np.argsort(h, kind="stable").astype(np.int64)  # (N,)
        self._hash = h[self._order]  # (N,) ascending
        self._ids = ids  # the bundle's ids (StringDType); live additions never enter it
        self._added: dict[str, int] = {}

    def _find(self, item_id: str, h: np.uint64) -> int | None:
        i = int(np.searchsorted(self._hash, h))
        while i < len(self._hash) and self._hash[i] == h:  # a collision is checked against the id
            row = int(self._order[i])
            if self._ids[row] == item_id:
                return row
            i += 1
        return self._added.get(item_id)

    def get(self, item_id: str) -> int | None:
        return self._find(item_id, _hashes([item_id])[0])

    def __contains__(self, item_id: str) -> bool:
        return self.get(item_id) is not None

    def __setitem__(self, item_id: str, row: int) -> None:
        self._added[item_id] = row

    def contains(self, item_ids: list[str]) -> list[bool]:
        """Whether each id is known (one hashing pass for all of them)."""
        if not item_ids:
            return []
        return [self._find(i, h) is not None for i, h in zip(item_ids, _hashes(item_ids), strict=True)]

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Rows of the known ids among ``item_ids``, in their order (unknown ones dropped)."""
        if not item_ids:
            return np.zeros(0, np.int64)
        found = (self._find(i, h) for i, h in zip(item_ids, _hashes(item_ids), strict=True))
        return np.array([r for r in found if r is not None], np.int64)
