"""The online metrics (serving/online.py) over a synthetic log of ``--events`` events and the served
lists they refer to, written as converted Parquet segments the way the janitor leaves them.

    .venv/bin/python bench/online_bench.py [--events 10000000] [--lists 1000000] [--out bench/out/online-log]

The log: ids as long as the real ones; ``lists`` served lists of 10 items over 7 days (4 placements,
2 bundle versions, channels and a few rules), one ``list_view`` per list, clicks on served items
(60 % with their rec_id, 40 % found by last touch), carts and purchases on clicked items, and
organic views making up the rest. Prints
the time of the Online page's report (every grouping in one read of the logs) and of the full
day × placement × version × variant × channel × rule × position table, each on a fresh connection.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bundle.logs import SCHEMAS, keys
from serving.online import online_table, report

T0 = 1_790_000_000_000  # epoch ms
DAY = 86_400_000


def _ids(prefix: str, n: np.ndarray, width: int = 0) -> pa.Array:
    """Ids as long as the real ones: event ids 32 characters (a uuid's hex), rec_ids 30 (serving/served_log.py)."""
    return pa.array(np.char.add(prefix, np.char.zfill(n.astype(str), width)))


def _rec_ids(n: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add("r", np.char.zfill(n.astype(str), 16)), ".0123456789ab")


def _lists(strings: list[str], rows: int, offsets: np.ndarray, picks: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(strings).take(pa.array(picks)))


def write_log(root: Path, n_events: int, n_lists: int, seed: int = 0, files: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    salt = keys(root)["salt"]
    n_users, n_items, k = 200_000, 70_000, 10
    user_of_list = rng.integers(0, n_users, n_lists)
    hashes = np.array([hashlib.sha256(f"{salt}u:u{u}".encode()).hexdigest()[:16] for u in range(n_users)])
    list_ts = T0 + rng.integers(0, 7 * DAY, n_lists)
    items = rng.integers(0, n_items, (n_lists, k))  # (L, K)
    # served items: one row per (list, position)
    n = n_lists * k
    lst = np.repeat(np.arange(n_lists), k)
    channels = _lists(["tower", "item2item", "category_popular"], n, np.arange(n + 1), rng.integers(0, 3, n))
    ruled = rng.random(n) < 0.02
    rules = _lists(["pin-1", "boost-2", "bury-3"], n, np.concatenate([[0], np.cumsum(ruled)]),
                   rng.integers(0, 3, int(ruled.sum())))
    served = pa.table({
        "rec_id": pa.array(_rec_ids(lst)), "ts": pa.array(list_ts[lst]),
        "route": pa.array(np.full(n, "recommendations")),
        "placement": pa.array(np.array(["home", "product", "cart", "category"])[lst % 4]),
        "shopper": pa.array(hashes[user_of_list[lst]]), "version": pa.array(np.array(["v1", "v2"])[lst % 2]),
        "variant": pa.nulls(n, pa.string()), "item_id": _ids("i", items.ravel()),
        "position": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_lists)), "channels": channels,
        "pre_rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_lists)), "rules": rules,
        "score": pa.array(rng.random(n))}).cast(SCHEMAS["served"])
    # events: list views, clicks (rec_id or last touch), carts, purchases, organic views
    n_click, n_cart, n_buy = n_events // 5, n_events // 20, n_events // 40
    n_view = max(0, n_events - n_lists - n_click - n_cart - n_buy)
    cl = rng.integers(0, n_lists, n_click)
    pos = rng.integers(0, k, n_click)
    cart = rng.choice(n_click, n_cart, replace=False)
    buy = cart[: n_buy]
    parts = {
        "list_view": (np.arange(n_lists), None, list_ts, True),
        "click": (cl, pos, list_ts[cl] + rng.integers(1, 3_600_000, n_click), rng.random(n_click) < 0.6),
        "cart": (cl[cart], pos[cart], list_ts[cl[cart]] + rng.integers(3_600_000, 2 * DAY, n_cart), False),
        "purchase": (cl[buy], pos[buy], list_ts[cl[buy]] + rng.integers(2 * DAY, 5 * DAY, n_buy), False)}
    tables, start = [], 0
    for typ, (li, p, ts, with_rec) in parts.items():
        m = len(li)
        with_rec = np.broadcast_to(np.asarray(with_rec), (m,))
        rec = np.where(with_rec, _rec_ids(li), None)
        tables.append(pa.table({
            "event_id": _ids("e", np.arange(start, start + m), 31), "type": pa.array(np.full(m, typ)),
            "user_id": _ids("u", user_of_list[li]), "session_id": pa.nulls(m, pa.string()),
            "item_id": pa.nulls(m, pa.string()) if p is None else _ids("i", items[li, p]),
            "ts": pa.array(ts), "received": pa.array(ts), "rec_id": pa.array(rec, pa.string()),
            "rec_ok": pa.array(with_rec), "position": pa.nulls(m, pa.int32()) if p is None else pa.array(p + 1),
            "placement": pa.nulls(m, pa.string()),
            "price": pa.array(np.where(typ == "purchase", 10 + 90 * rng.random(m), np.nan)),
            "quantity": pa.array(np.ones(m, np.int32)), "order_id": pa.nulls(m, pa.string()),
            "known_item": pa.array(np.ones(m, bool))}).cast(SCHEMAS["events"]))
        start += m
    tables.append(pa.table({
        "event_id": _ids("e", np.arange(start, start + n_view), 31), "type": pa.array(np.full(n_view, "view")),
        "user_id": _ids("u", rng.integers(0, n_users, n_view)), "session_id": pa.nulls(n_view, pa.string()),
        "item_id": _ids("i", rng.integers(0, n_items, n_view)), "ts": pa.array(T0 + rng.integers(0, 7 * DAY, n_view)),
        "received": pa.array(np.full(n_view, T0)), "rec_id": pa.nulls(n_view, pa.string()),
        "rec_ok": pa.nulls(n_view, pa.bool_()), "position": pa.nulls(n_view, pa.int32()),
        "placement": pa.nulls(n_view, pa.string()), "price": pa.nulls(n_view, pa.float64()),
        "quantity": pa.nulls(n_view, pa.int32()), "order_id": pa.nulls(n_view, pa.string()),
        "known_item": pa.array(np.ones(n_view, bool))}).cast(SCHEMAS["events"]))
    events = pa.concat_tables(tables)
    for kind, t in (("events", events), ("served", served)):
        day = datetime.fromtimestamp(T0 / 1000, UTC).strftime("%Y-%m-%d")
        (root / kind / day).mkdir(parents=True, exist_ok=True)
        step = -(-t.num_rows // files)
        for f in range(files):
            pq.write_table(t.slice(f * step, step), root / kind / day / f"bench-{f}-{T0}.parquet")
    return {"events": events.num_rows, "served_items": served.num_rows, "lists": n_lists}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--lists", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("bench/out/online-log"))
    a = ap.parse_args()
    if not (a.out / "events").is_dir():
        t = time.perf_counter()
        size = write_log(a.out, a.events, a.lists)
        print(f"wrote {size} in {time.perf_counter() - t:.0f} s")
    mb = sum(p.stat().st_size for p in a.out.rglob("*.parquet")) / 1e6
    t = time.perf_counter()
    r = report(a.out)
    t_report = time.perf_counter() - t
    t = time.perf_counter()
    full = online_table(a.out)
    t_full = time.perf_counter() - t
    tot = r["totals"].iloc[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; DuckDB over {mb:.0f} MB of Parquet "
          f"({a.events:,} events, {a.lists:,} served lists of 10); {datetime.now(UTC):%Y-%m-%d}")
    print("| query | seconds | rows |\n|---|---|---|")
    print(f"| the Online page's report (6 groupings, one read) | {t_report:.1f} | {sum(len(v) for v in r.values())} |")
    print(f"| the full 7-key table | {t_full:.1f} | {len(full)} |")
    print(f"attributed: {int(tot.clicks):,} clicks, {int(tot.carts):,} carts, {int(tot.purchases):,} purchases "
          f"over {int(tot.impressions):,} impressions (target: <= 10 s for 10M events)")


if __name__ == "__main__":
    main()
