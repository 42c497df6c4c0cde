"""Each known shopper's state as a bundle carries it (``users.parquet``): what the user tower and the
ranker read of a shopper, from the events up to a moment. The bundle's is as of its data; the
nightly gate rebuilds it as of the end of tonight's validation period, so no shopper's state holds
the items it is scored on (pipelines/gate.py). numpy + pandas: serving imports this."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features import PAD, FeatureSpec, Vocab

MAX_SEEN = 500  # distinct items kept per user: enough for category shares and exclusion


def user_states(events: pd.DataFrame, users: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One row per known user: feature columns + ``history`` (last L rows, most recent first),
    ``seen`` (distinct rows, most recent MAX_SEEN), ``purchased`` (distinct rows) and the long-term
    profile the user tower reads: ``profile`` (rows) and ``profile_w`` (weights), FeatureSpec.user_profiles."""
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
    return out.reset_index()
