"""A shop's export onto the canonical tables: which of its columns is which field, what its event
names mean, how its timestamps are written. A mapping, not a rename: the shop's files stay as
they are, and the same YAML file (or ``--map`` pairs) is passed on every import.

    columns:                  # shop column: canonical field (any table that has the column)
      sku: item_id
      customer_id: user_id
      action: event
      when: ts
      product_type: category
    events:                   # shop event name: view | cart | purchase | drop
      page_view: view
      add_to_cart: cart
      order: purchase
      wishlist: drop
    timestamps:
      format: "%d/%m/%Y %H:%M"   # strptime; absent: ISO 8601 or epoch numbers
      timezone: Europe/Paris     # the zone of timestamps written without one; absent: UTC

``infer_map`` proposes such a file from the headers and a sample of rows (``--infer``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipelines.tables import EVENT_TYPES

log = logging.getLogger(__name__)

FIELDS = {"items": ("item_id", "category", "price", "title", "image", "in_stock", "created_at", "removed"),
          "users": ("user_id",),
          "events": ("user_id", "item_id", "event", "ts")}
REQUIRED = {"items": ("item_id", "category", "price"), "users": ("user_id",),
            "events": ("user_id", "item_id", "event", "ts")}
DROP = "drop"
# Header synonyms, lower-case with separators removed: what a shop's export calls each field.
SYNONYMS = {
    "item_id": ("itemid", "item", "sku", "productid", "product", "articleid", "article", "asin", "offerid", "pid"),
    "user_id": ("userid", "user", "customerid", "customer", "clientid", "client", "visitorid", "visitor",
                "shopperid", "shopper", "accountid", "uid"),
    "event": ("event", "eventtype", "eventname", "action", "type", "behavior", "behaviour", "interaction"),
    "ts": ("ts", "timestamp", "time", "datetime", "date", "eventtime", "eventdate", "occurredat", "at"),
    "category": ("category", "categoryname", "producttype", "department", "cat", "section", "family"),
    "price": ("price", "unitprice", "amount", "priceeur", "priceusd", "cost", "listprice"),
    "title": ("title", "name", "productname", "itemname", "label", "description"),
    "image": ("image", "imagepath", "imagefile", "photo", "picture", "img", "imageurl", "thumbnail"),
    "in_stock": ("instock", "available", "availability", "stock", "isavailable", "active"),
    "created_at": ("createdat", "created", "addedat", "added", "publishedat", "firstseen", "listedat"),
    "removed": ("removed", "deleted", "isdeleted", "discontinued", "archived"),
}
EVENT_SYNONYMS = {
    "view": ("view", "pageview", "productview", "detail", "detailview", "click", "visit", "viewitem", "impression"),
    "cart": ("cart", "addtocart", "addtobasket", "basket", "atc", "cartadd", "addtobag", "bag"),
    "purchase": ("purchase", "order", "buy", "bought", "transaction", "checkout", "sale", "conversion", "paid"),
}


class MappingError(ValueError):
    """The mapping file or a ``--map`` pair is wrong, or names a column the export lacks."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


@dataclass
class ImportMap:
    columns: dict[str, str] = field(default_factory=dict)  # shop column -> canonical field
    events: dict[str, str] = field(default_factory=dict)  # shop event name -> view | cart | purchase | drop
    timestamps: dict[str, str] = field(default_factory=dict)  # format, timezone

    def __post_init__(self) -> None:
        known = {f for fs in FIELDS.values() for f in fs}
        for src, dst in self.columns.items():
            if dst not in known:
                raise MappingError(f"map: column {src!r} -> {dst!r}: {dst!r} is not a field ({sorted(known)})")
        for src, dst in self.events.items():
            if dst not in (*EVENT_TYPES, DROP):
                raise MappingError(f"map: event {src!r} -> {dst!r}: must be one of {[*EVENT_TYPES, DROP]}")
        unknown = set(self.timestamps) - {"format", "timezone"}
        if unknown:
            raise MappingError(f"map: timestamps has unknown keys {sorted(unknown)} (format, timezone)")

    @classmethod
    def load(cls, path: Path) -> ImportMap:
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise MappingError(f"{path}: cannot read the mapping ({e})") from e
        if not isinstance(d, dict) or set(d) - {"columns", "events", "timestamps"}:
            raise MappingError(f"{path}: a mapping has the keys columns, events, timestamps; got {list(d)}")
        return cls(**{k: {str(a): str(b) for a, b in (v or {}).items()} for k, v in d.items()})

    @classmethod
    def from_args(cls, args: list[str]) -> ImportMap:
        """``--map`` values: a YAML file, ``SHOP_COLUMN=field`` or ``event:SHOP_NAME=view``; merged in order."""
        m = cls()
        for a in args:
            if "=" not in a:
                other = cls.load(Path(a))
                m = cls(m.columns | other.columns, m.events | other.events, m.timestamps | other.timestamps)
                continue
            src, dst = (s.strip() for s in a.split("=", 1))
            if src.startswith("event:"):
                m = cls(m.columns, m.events | {src[6:]: dst}, m.timestamps)
            elif src in ("ts-format", "ts-timezone"):
                m = cls(m.columns, m.events, m.timestamps | {src[3:]: dst})
            else:
                m = cls(m.columns | {src: dst}, m.events, m.timestamps)
        return m

    def to_yaml(self) -> str:
        return yaml.safe_dump({k: v for k, v in asdict(self).items() if v}, sort_keys=False, allow_unicode=True)


def apply_map(table: str, df: pd.DataFrame, m: ImportMap, source: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The shop's frame with canonical column names and values; also {dropped event name: rows}."""
    rename = {c: m.columns[c] for c in df.columns if c in m.columns and m.columns[c] in FIELDS[table]}
    clash = {dst for dst in rename.values() if dst in df.columns and dst not in rename}
    out = df.drop(columns=sorted(clash)).rename(columns=rename)
    lacking = [f for f in REQUIRED[table] if f not in out.columns]
    if lacking:
        raise MappingError(f"{table}: missing required column(s) {lacking} in {Path(source).name} (columns: "
                           f"{', '.join(map(str, df.columns))}); map one with --map COLUMN={lacking[0]}")
    dropped: dict[str, int] = {}
    if table == "events" and m.events:
        names = out["event"].astype("string").str.strip()
        to = names.map(lambda n: m.events.get(n, m.events.get(str(n).lower(), n)) if pd.notna(n) else n)
        drop = to == DROP
        dropped = names[drop].value_counts().to_dict()
        out = out.assign(event=to)[~drop.fillna(False).to_numpy()].reset_index(drop=True)
    for col in ("ts", "created_at"):
        if col in out.columns and m.timestamps:
            out[col] = parse_times(out[col], m.timestamps)
    return out, dropped


def parse_times(s: pd.Series, ts: dict[str, str]) -> pd.Series:
    """Text in the mapping's format and zone -> UTC timestamps; unparseable ones stay as text, so
    validation rejects their rows by name."""
    fmt, zone = ts.get("format"), ts.get("timezone")
    parsed = pd.to_datetime(s, format=fmt or "ISO8601", errors="coerce")
    if zone:
        try:
            naive = parsed.dt.tz is None
        except AttributeError:
            naive = True
        if naive:
            # The hour repeated when clocks go back reads as its first pass (summer time); a time the
            # spring-forward gap skipped moves forward: nothing valid is rejected for the clock's sake.
            first_pass = np.ones(len(parsed), bool)
            parsed = parsed.dt.tz_localize(zone, ambiguous=first_pass, nonexistent="shift_forward")
    parsed = parsed.dt.tz_convert("UTC") if parsed.dt.tz is not None else parsed.dt.tz_localize("UTC")
    return parsed.astype(object).where(parsed.notna(), s)


def infer_map(frames: dict[str, pd.DataFrame], sample: int = 2000) -> ImportMap:
    """A proposed mapping from headers and a sample of rows, for a person to review."""
    columns: dict[str, str] = {}
    for table, df in frames.items():
        if df is None:
            continue
        taken = set(columns.values()) if table != "events" else set()
        for f in FIELDS[table]:
            if f in df.columns or (f in taken and table != "events"):
                continue
            hit = next((c for c in df.columns if _key(c) in SYNONYMS[f] and c not in columns), None)
            if hit is None and f == "ts":  # any column whose sample parses as dates
                hit = next((c for c in df.columns if c not in columns and _looks_like_time(df[c].head(sample))), None)
            if hit is not None:
                columns[hit] = f
    timestamps: dict[str, str] = {}
    ev = frames.get("events")
    ts_col = next((c for c, f in columns.items() if f == "ts"), "ts")
    if ev is not None and ts_col in ev.columns:
        fmt = _time_format(ev[ts_col].dropna().astype(str).head(sample))
        if fmt:
            timestamps["format"] = fmt
    events: dict[str, str] = {}
    if ev is not None:
        col = next((c for c, f in columns.items() if f == "event"), "event" if "event" in ev.columns else None)
        if col is not None:
            for name in ev[col].dropna().astype(str).str.strip().unique()[:200]:
                kind = next((k for k, syn in EVENT_SYNONYMS.items() if _key(name) in syn), DROP)
                if name != kind:
                    events[name] = kind
    return ImportMap(columns, events, timestamps)


FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M",
           "%d.%m.%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%d/%m/%Y", "%m/%d/%Y")


def _time_format(text: pd.Series) -> str | None:
    """A strptime format when the sample is not ISO 8601 or epoch numbers and one format reads
    (nearly) all of it; day-first wins a tie only when no day exceeds 12 either way (then ambiguous:
    the first that parses, for a person to check)."""
    if text.empty or pd.to_numeric(text, errors="coerce").notna().mean() > 0.9:
        return None
    if pd.to_datetime(text, errors="coerce", format="ISO8601").notna().mean() > 0.99:
        return None
    for fmt in FORMATS:
        if pd.to_datetime(text, errors="coerce", format=fmt).notna().mean() > 0.99:
            return fmt
    return None


def _looks_like_time(s: pd.Series) -> bool:
    if s.empty or pd.api.types.is_bool_dtype(s):
        return False
    if pd.api.types.is_datetime64_any_dtype(s):
        return True
    text = s.dropna().astype(str)
    return len(text) > 0 and pd.to_datetime(text, errors="coerce", format="mixed").notna().mean() > 0.9 and \
        text.str.contains(r"\d{2}[:/\-.]\d{2}").mean() > 0.9
