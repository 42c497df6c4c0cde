"""The canonical data model: items, users, events — pandera schemas and Parquet I/O.

Ids are strings everywhere (``"i00042"``, ``"196"``): catalogs mix numeric and textual ids, and one
dtype keeps joins between tables honest. Timestamps are UTC, microsecond resolution.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

EVENT_TYPES = ("view", "cart", "purchase")
TS_DTYPE = pd.DatetimeTZDtype("us", "UTC")
TABLES = ("items", "users", "events")

ITEMS = pa.DataFrameSchema(
    {
        "item_id": pa.Column(str, nullable=False, unique=True),
        "title": pa.Column(str, nullable=False),
        "category": pa.Column(str, pa.Check.str_length(min_value=1), nullable=False),
        "price": pa.Column(float, pa.Check.ge(0), nullable=False),
        "in_stock": pa.Column(bool, nullable=False),
        "image": pa.Column(str, nullable=True),  # relative to the dataset root; null = no image
        "created_at": pa.Column(TS_DTYPE, nullable=False),
    },
    name="items",
    strict=False,  # extra columns (e.g. the Fashion-MNIST split) pass through
)

USERS = pa.DataFrameSchema(
    {"user_id": pa.Column(str, nullable=False, unique=True)},
    name="users",
    strict=False,  # any categorical features
)

EVENTS = pa.DataFrameSchema(
    {
        "user_id": pa.Column(str, nullable=False),
        "item_id": pa.Column(str, nullable=False),
        "event": pa.Column(str, pa.Check.isin(EVENT_TYPES), nullable=False),
        "ts": pa.Column(TS_DTYPE, nullable=False),
    },
    name="events",
    strict=False,  # e.g. MovieLens keeps its rating
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {"items": ITEMS, "users": USERS, "events": EVENTS}


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file whose bytes depend only on the data (same frame → same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa_arrow.Table.from_pandas(df, preserve_index=False)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    tmp.replace(path)


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns)


def read_dataset(root: Path) -> dict[str, pd.DataFrame]:
    """Load ``items``, ``users`` and ``events`` of a dataset directory."""
    return {name: read_table(root / f"{name}.parquet") for name in TABLES}


def images_fingerprint(root: Path) -> str:
    """sha256 over the catalog's image column and the bytes of every image it names (a photo replaced
    under the same file name changes what the CNN learns)."""
    h = hashlib.sha256()
    for rel in read_table(root / "items.parquet", columns=["image"])["image"].fillna("").astype(str):
        h.update(rel.encode() + b"\0")
        p = root / rel
        if rel and p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def fingerprint(root: Path) -> str:
    """sha256 over the canonical tables' bytes: the dataset identity recorded in bundles."""
    h = hashlib.sha256()
    for name in TABLES:
        h.update(name.encode())
        h.update((root / f"{name}.parquet").read_bytes())
    return h.hexdigest()
