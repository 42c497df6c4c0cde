"""Validation on the way in: coerce raw tables to the canonical model, reject bad rows with reasons.

Every rejected row is kept (table, 1-based row number in its source, reason, the raw record) so
nothing is lost; the job fails when a table's rejected share passes ``max_bad_share``.
Checks run in order — coercion, then the pandera schema on what coerced, then duplicates and
references — and a row reports every reason found up to its first failing stage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pandera.pandas as pa

from common.ids import BAD_CHARS, EMAIL, MAX_ID_LEN
from pipelines.tables import SCHEMAS, TS_DTYPE, write_table
from vision.pixel_cache import decode_cached

log = logging.getLogger(__name__)

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class DataValidationError(RuntimeError):
    """Too many bad rows (or a missing column): the ingest refuses the data."""


@dataclass
class TableReport:
    table: str
    n_rows: int
    n_bad: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason kind -> count

    @property
    def bad_share(self) -> float:
        return self.n_bad / self.n_rows if self.n_rows else 0.0


@dataclass
class Validated:
    items: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame
    rejected: pd.DataFrame  # table, row, reason, record
    reports: dict[str, TableReport]


class _Reasons:
    """Per-row reason strings; a row is bad once it has any."""

    def __init__(self, index: pd.Index) -> None:
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, mask: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool), index=self.text.index)
        if not mask.any():
            return
        msg = reason[mask].astype(str) if isinstance(reason, pd.Series) else reason
        cur = self.text[mask]
        self.text[mask] = cur.where(cur == "", cur + "; ") + msg

    @property
    def bad(self) -> pd.Series:
        return self.text != ""


def _require(df: pd.DataFrame, table: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(f"{table}: missing required column(s) {missing}; got {list(df.columns)}")


def _ids(s: pd.Series, name: str, R: _Reasons) -> pd.Series:
    """Any id column -> strings; integral floats (CSV with gaps) lose their '.0'."""
    if pd.api.types.is_float_dtype(s):
        integral = s.notna() & (s % 1 == 0)
        out = s.astype(object).where(~integral, s.where(integral).astype("Int64").astype(object))
        s = out
    out = s.astype("str").str.strip()
    missing = s.isna() | (out == "") | (out.str.lower() == "nan")
    R.add(missing, f"missing {name}")
    # the one id rule (common/ids.py), vectorised: ids end up in URLs, pages and file names
    R.add(~missing & (out.str.len() > MAX_ID_LEN), f"{name} longer than {MAX_ID_LEN} characters")
    R.add(~missing & out.str.contains(BAD_CHARS, regex=True),
          f"{name} holds a character ids may not (control characters, quotes, angle brackets, backslash)")
    if name == "user_id":
        R.add(~missing & out.str.match(EMAIL), "user_id looks like an e-mail address: export a pseudonymous id")
    return out.where(~missing, None)


def _epoch_to_ts(v: pd.Series) -> pd.Series:
    """Epoch numbers -> UTC timestamps; unit guessed from magnitude (s, ms, us or ns)."""
    a = v.abs()
    scale = np.select([a < 1e11, a < 1e14, a < 1e17], [1e6, 1e3, 1.0], 1e-3)  # -> microseconds
    us = (v * scale).round()
    return pd.to_datetime(us, unit="us", utc=True, errors="coerce").astype(TS_DTYPE)


def _timestamps(s: pd.Series, name: str, R: _Reasons) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC").astype(TS_DTYPE)
    elif pd.api.types.is_datetime64_dtype(s):
        out = s.dt.tz_localize("UTC").astype(TS_DTYPE)
    elif pd.api.types.is_numeric_dtype(s):
        out = _epoch_to_ts(s.astype(float))
    else:
        num = pd.to_numeric(s, errors="coerce")
        out = _epoch_to_ts(num)
        text = num.isna() & s.notna()
        if text.any():
            parsed = pd.to_datetime(s[text], utc=True, errors="coerce", format="ISO8601")
            out[text] = parsed.astype(TS_DTYPE)
    R.add(s.isna(), f"missing {name}")
    R.add(out.isna() & s.notna(), f"unparseable {name} (" + s.astype(str) + ")")
    return out


def _floats(s: pd.Series, name: str, R: _Reasons) -> pd.Series:
    out = pd.to_numeric(s, errors="coerce").astype(float)
    R.add(s.isna(), f"missing {name}")
    R.add(out.isna() & s.notna(), f"{name} is not a number (" + s.astype(str) + ")")
    R.add(np.isinf(out.fillna(0)), f"{name} is not finite")
    return out


def _bools(s: pd.Series, name: str, R: _Reasons) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(bool)
    text = s.astype(str).str.strip().str.lower().str.removesuffix(".0")
    is_t, is_f = text.isin(_TRUE), text.isin(_FALSE)
    R.add(~(is_t | is_f), f"{name} is not a boolean (" + s.astype(str) + ")")
    return is_t


def parse_bools(s: pd.Series, name: str) -> tuple[pd.Series, pd.Series]:
    """Text or bool column -> (values, which rows were not a boolean)."""
    R = _Reasons(s.index)
    return _bools(s, name, R), R.bad


_CHECK_TEXT = {
    "not_nullable": "missing {col}",
    "greater_than_or_equal_to(0)": "negative {col} ({val})",
    "str_length(1, None)": "empty {col}",
}


def _schema_reasons(table: str, df: pd.DataFrame, R: _Reasons) -> None:
    """Run the pandera contract (without uniqueness, handled as 'first wins') on unflagged rows."""
    schema = SCHEMAS[table]
    id_col = {"items": "item_id", "users": "user_id"}.get(table)
    if id_col:
        schema = schema.update_column(id_col, unique=False)
    ok = df[~R.bad]
    try:
        schema.validate(ok, lazy=True)
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
        for _, f in fc[fc["index"].notna()].iterrows():
            check = str(f["check"])
            tmpl = _CHECK_TEXT.get(check)
            if tmpl is None and check.startswith("isin("):
                tmpl = "{col} must be one of " + check[5:-1] + " (got {val})"
            msg = (tmpl or "{col} fails " + check).format(col=f["column"], val=f["failure_case"])
            R.add(df.index == f["index"], msg)
        whole = fc[fc["index"].isna()]
        if len(whole):
            raise DataValidationError(f"{table}: {whole[['column', 'check']].to_dict('records')}") from e


def _duplicates(ids: pd.Series, name: str, R: _Reasons) -> None:
    dup = ids[~R.bad].duplicated(keep="first").reindex(ids.index, fill_value=False)
    R.add(dup, f"duplicate {name} (" + ids.astype(str) + ")")


def clean_items(raw: pd.DataFrame, image_root: Path | None = None, pixel_cache: Path | None = None
                ) -> tuple[pd.DataFrame, _Reasons]:
    _require(raw, "items", ["item_id", "category", "price"])
    df = raw.reset_index(drop=True).copy()
    R = _Reasons(df.index)
    df["item_id"] = _ids(df["item_id"], "item_id", R)
    df["category"] = df["category"].astype("str").str.strip().where(df["category"].notna(), None)
    df["title"] = df["title"].astype("str").fillna("") if "title" in df else ""
    df["price"] = _floats(df["price"], "price", R)
    df["in_stock"] = _bools(df["in_stock"], "in_stock", R) if "in_stock" in df else True
    if "image" not in df:
        df["image"] = None
    df["image"] = df["image"].astype("str").where(df["image"].notna() & (df["image"] != ""), None)
    df["created_at"] = _timestamps(df["created_at"], "created_at", R)
    has_img = df["image"].notna()
    if has_img.any():
        rel = df.loc[has_img, "image"]
        escapes = rel.map(lambda p: PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts)
        R.add(escapes.reindex(df.index, fill_value=False), "image path escapes the dataset root")
        if image_root is not None:
            missing = rel[~escapes].map(lambda p: not (image_root / p).is_file())
            R.add(missing.reindex(df.index, fill_value=False),
                  "missing image file (" + df["image"].astype(str) + ")")
            present = rel[~escapes][~missing]  # decoded once, with the service's code, in parallel
            _, errors = decode_cached([image_root / p for p in present], pixel_cache, progress=len(present) > 5_000)
            bad = pd.Series([e is not None for e in errors], index=present.index, dtype=bool)
            why = pd.Series([f"unreadable image {p} ({e})" for p, e in zip(present, errors, strict=True)],
                            index=present.index, dtype=object)
            R.add(bad.reindex(df.index, fill_value=False), why.reindex(df.index, fill_value=""))
    return df, R


def clean_users(raw: pd.DataFrame) -> tuple[pd.DataFrame, _Reasons]:
    _require(raw, "users", ["user_id"])
    df = raw.reset_index(drop=True).copy()
    R = _Reasons(df.index)
    df["user_id"] = _ids(df["user_id"], "user_id", R)
    return df, R


def clean_events(
    raw: pd.DataFrame, item_ids: pd.Series, user_ids: pd.Series | None
) -> tuple[pd.DataFrame, _Reasons]:
    _require(raw, "events", ["user_id", "item_id", "event", "ts"])
    df = raw.reset_index(drop=True).copy()
    R = _Reasons(df.index)
    df["user_id"] = _ids(df["user_id"], "user_id", R)
    df["item_id"] = _ids(df["item_id"], "item_id", R)
    df["event"] = df["event"].astype("str").str.strip().str.lower().where(df["event"].notna(), None)
    df["ts"] = _timestamps(df["ts"], "ts", R)
    R.add(df["item_id"].notna() & ~df["item_id"].isin(item_ids),
          "unknown item_id (" + df["item_id"].astype(str) + ")")
    if user_ids is not None:
        R.add(df["user_id"].notna() & ~df["user_id"].isin(user_ids),
              "unknown user_id (" + df["user_id"].astype(str) + ")")
    return df, R


def _records(df: pd.DataFrame) -> list[dict]:
    return df.astype(object).where(df.notna(), None).to_dict("records")


def _finish(table: str, raw: pd.DataFrame, df: pd.DataFrame, R: _Reasons, id_col: str | None):
    if not R.bad.all():
        _schema_reasons(table, df, R)
    if id_col:
        _duplicates(df[id_col], id_col, R)
    bad = R.bad
    rejected = pd.DataFrame({
        "table": table,
        "row": np.flatnonzero(bad.to_numpy()) + 1,
        "reason": R.text[bad].to_numpy(),
        "record": [json.dumps(r, default=str) for r in _records(raw.reset_index(drop=True)[bad.to_numpy()])],
    })
    kinds = R.text[bad].str.split("; ").explode().str.replace(r" \(.*\)$", "", regex=True)
    report = TableReport(table, len(df), int(bad.sum()), kinds.value_counts().sort_index().to_dict())
    return df[~bad].reset_index(drop=True), rejected, report


def _with_first_seen(items: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Catalogs without ``created_at`` (MovieLens): an item appears with its first event."""
    scratch = _Reasons(events.index)
    ts = _timestamps(events["ts"], "ts", scratch)
    first = ts.groupby(_ids(events["item_id"], "item_id", scratch)).min()
    ids = _ids(items["item_id"], "item_id", _Reasons(items.index))
    return items.assign(created_at=ids.map(first).astype(TS_DTYPE).fillna(ts.min()))


def validate(
    items: pd.DataFrame,
    users: pd.DataFrame | None,
    events: pd.DataFrame,
    *,
    image_root: Path | None = None,
    known_items: pd.Series | None = None,
    known_users: pd.Series | None = None,
    pixel_cache: Path | None = None,
) -> Validated:
    """Coerce and check the three tables; the threshold is applied by :func:`write_validated`.

    ``users`` may be ``None``: the users table is then derived from the events' user ids.
    ``known_items`` / ``known_users``: ids already in the dataset (``--append``): events may name
    them, and a derived users table leaves them out. ``pixel_cache``: where the photos decoded to check
    them are kept for training (``vision/pixel_cache.py``; the dataset's ``cache/``).
    """
    _require(items, "items", ["item_id", "category", "price"])  # before anything reads them
    _require(events, "events", ["user_id", "item_id", "event", "ts"])
    if users is not None:
        _require(users, "users", ["user_id"])
    if "created_at" not in items:
        items = _with_first_seen(items, events)
    it_df, it_R = clean_items(items, image_root, pixel_cache)
    items_ok, rej_i, rep_i = _finish("items", items, it_df, it_R, "item_id")
    if users is None:
        ids = pd.Series(pd.unique(events["user_id"].dropna()))
        if known_users is not None:
            ids = ids[~_ids(ids, "user_id", _Reasons(ids.index)).isin(known_users)]
        users = pd.DataFrame({"user_id": ids.to_numpy()})
    us_df, us_R = clean_users(users)
    users_ok, rej_u, rep_u = _finish("users", users, us_df, us_R, "user_id")
    item_ids, user_ids = items_ok["item_id"], users_ok["user_id"]
    if known_items is not None:
        item_ids = pd.concat([item_ids, known_items], ignore_index=True)
    if known_users is not None:
        user_ids = pd.concat([user_ids, known_users], ignore_index=True)
    ev_df, ev_R = clean_events(events, item_ids, user_ids)
    events_ok, rej_e, rep_e = _finish("events", events, ev_df, ev_R, None)
    events_ok = events_ok.sort_values(["ts", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    for name, df in (("items", items_ok), ("users", users_ok), ("events", events_ok)):
        SCHEMAS[name].validate(df)  # the contract holds for what we keep
    reports = {"items": rep_i, "users": rep_u, "events": rep_e}
    rejected = pd.concat([rej_i, rej_u, rej_e], ignore_index=True)
    for rep in reports.values():
        log.info("%s: %d rows, %d rejected %s", rep.table, rep.n_rows, rep.n_bad, rep.reasons or "")
    return Validated(items_ok, users_ok, events_ok, rejected, reports)


def check_threshold(v: Validated, max_bad_share: float) -> None:
    over = [r for r in v.reports.values() if r.bad_share > max_bad_share]
    if over:
        detail = ", ".join(f"{r.table} {r.n_bad}/{r.n_rows} ({r.bad_share:.1%}) {r.reasons}" for r in over)
        raise DataValidationError(f"too many bad rows (max share {max_bad_share:.1%}): {detail}")


def write_report(v: Validated, out: Path) -> None:
    """``rejected.csv`` (every bad row, its reasons and raw record) and ``validation.json`` (counts by
    reason) of the latest import into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    v.rejected.to_csv(out / "rejected.csv", index=False)
    summary = {t: {"rows": r.n_rows, "rejected": r.n_bad, "reasons": r.reasons} for t, r in v.reports.items()}
    (out / "validation.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def write_validated(v: Validated, out: Path, max_bad_share: float = 0.01) -> None:
    """Write the rejection report always; the tables only when the threshold holds."""
    write_report(v, out)
    check_threshold(v, max_bad_share)
    write_table(v.items, out / "items.parquet")
    write_table(v.users, out / "users.parquet")
    write_table(v.events, out / "events.parquet")
