"""Each known shopper's state as a bundle carries it (``users.parquet``): what the user tower and the
ranker read of a shopper, from the events up to a moment. The bundle's is as of its data; the
nightly gate rebuilds it as of the end of tonight's validation period, so no shopper's state holds
the items it is scored on (pipelines/gate.py). numpy + pandas: serving imports this."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features import PAD, FeatureSpec, Vocab
from recsys.placements import MAX_TOUCHES, TOUCH_COLUMNS
from recsys.repeat_sources import touches

MAX_SEEN = 500  # distinct items kept per user: enough for category shares and exclusion


def user_states(events: pd.DataFrame, users: pd.DataFrame, spec: FeatureSpec,
                now: pd.Series | pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per known user: feature columns + ``history`` (last L rows, most recent first),
    ``seen`` (distinct rows, most recent MAX_SEEN), ``purchased`` (distinct rows), the long-term
    profile the user tower reads: ``profile`` (rows) and ``profile_w`` (weights), FeatureSpec.user_profiles,
    and the touches the placements read (recsys/placements.py ``TOUCH_COLUMNS``, the MAX_TOUCHES most
    recent items) as of ``now`` (per user_id, or one time; None: the last event's)."""
    ev = events.assign(row=spec.item_vocab.encode_rows(events["item_id"]))
    ev = ev[ev["row"] >= 0].sort_values(["user_id", "ts"], ascending=[True, False], kind="stable")
    g = ev.groupby("user_id", sort=True)["row"]
    hist = g.apply(lambda r: r.to_numpy()[: spec.history_len].astype(np.int32))
    seen = g.apply(lambda r: pd.unique(r.to_numpy())[:MAX_SEEN].astype(np.int32))
    bought = ev[ev["event"] == "purchase"].groupby("user_id")["row"].apply(lambda r: np.unique(r.to_numpy()))
    out = users.set_index("user_id").reindex(users["user_id"])
    out = out[[c for c in spec.user_features]]
    empty = np.zeros(0, np.int32)
    out["history"] = [hist.get(u, empty) for u in out.index]
    out["seen"] = [seen.get(u, empty) for u in out.index]
    out["purchased"] = [bought.get(u, empty).astype(np.int32) for u in out.index]
    prof, w = spec.user_profiles(events, out.index.to_numpy())  # (U, P) vocab indices, 0-padded
    rows = Vocab.row_of_index(prof)
    n = (prof != PAD).sum(1)  # profiles are left-aligned: the first n entries are real
    out["profile"] = [r[:k].astype(np.int32) for r, k in zip(rows, n, strict=True)]
    out["profile_w"] = [x[:k].astype(np.float32) for x, k in zip(w, n, strict=True)]
    for c, v in touch_columns(events, out.index, spec, now).items():
        out[c] = v
    return out.reset_index()


def touch_columns(events: pd.DataFrame, user_ids: pd.Index, spec: FeatureSpec,
                  now: pd.Series | pd.Timestamp | None) -> dict[str, list[np.ndarray]]:
    """``TOUCH_COLUMNS`` per user of ``user_ids``: recsys/repeat_sources.py ``touches`` of their
    catalog items as of ``now``, the most recent first."""
    if now is None:
        now = events["ts"].max() if len(events) else pd.Timestamp.now(tz="UTC")
    t = touches(events, now)
    t = t.assign(row=spec.item_vocab.encode_rows(t["item_id"]))
    t = t[t["row"] >= 0].sort_values(["user_id", "age", "row"], kind="stable")
    t = t.groupby("user_id", sort=False).head(MAX_TOUCHES)
    src = {"touch_rows": ("row", np.int32), "touch_age": ("age", np.float32), "touch_n": ("n", np.float32),
           "touch_cart": ("open_cart", np.float32), "touch_views_day": ("views_last_day", np.float32),
           "touch_buys": ("buys", np.float32), "touch_buy_age": ("buy_age", np.float32)}
    by = {u: g for u, g in t.groupby("user_id", sort=False)}
    out: dict[str, list[np.ndarray]] = {c: [] for c in TOUCH_COLUMNS}
    for u in user_ids.astype(str):
        g = by.get(u)
        for c in TOUCH_COLUMNS:
            col, dt = src[c]
            out[c].append(np.zeros(0, dt) if g is None else g[col].to_numpy(dt))
    return out
