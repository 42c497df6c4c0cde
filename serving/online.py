"""What the recommendations earned online (docs/online.md): the served lists joined with the events
they caused, computed by DuckDB over the logs (bundle/logs.py: the converted Parquet segments and the
open JSON-lines tails), never with hand-written loops.

Attribution, in this order:
- an event with a verified ``rec_id`` goes to that list, if the list showed the event's item;
- otherwise last touch: the latest list shown to the same shopper (their user id, else their
  session) that held the item, at most ``click_window`` before a click and ``purchase_window``
  before a cart or a purchase;
- otherwise the event is unattributed (organic).
An event counts once (``event_id``); an erased shopper counts nowhere.

Per day × placement × bundle version × variant × channel × rule × position: impressions (items of
served lists; an item found by two channels counts in both channels' rows), clicks, carts,
purchases, attributed revenue (price × quantity of purchases) and the rates: CTR, add-to-cart rate
and conversion per impression, revenue per 1,000 impressions.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd

from bundle.log_erasure import erased
from bundle.log_sql import events_sql, served_sql
from bundle.logs import keys

GROUPS = ("day", "placement", "version", "variant", "channel", "rule", "position")
HEX = set("0123456789abcdef")
METRICS = ("impressions", "clicks", "carts", "purchases", "revenue", "ctr", "atc_rate", "conversion", "rpm")


def _sources(root: Path) -> tuple[str, str] | None:
    """SQL for the logged events and the served items (None: nothing served yet)."""
    served = served_sql(root)
    return None if served is None else (events_sql(root), served)


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _read_logs(con: duckdb.DuckDBPyConnection, src: tuple[str, str], hashed: str, gone: str) -> None:
    """The tables ``ev`` and ``imp`` from the log files (the only reads of them)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW ev_all AS {src[0]}")
    # Only the events metrics need (organic views are most of a log): once each, erased shoppers gone.
    # Retries are rare in the log (the intake drops them): rows sharing an id's 64-bit hash are found
    # by one hash aggregate, and only those are ordered to keep each event's first copy.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE ev_f AS
        SELECT *, hash(event_id) AS h FROM ev_all WHERE type IN ('click', 'cart', 'purchase', 'list_view')
        {f"AND {hashed} NOT IN ({gone})" if gone else ""}""")
    con.execute("""CREATE OR REPLACE TEMP TABLE ev AS
        WITH dup AS (SELECT h FROM ev_f GROUP BY h HAVING count(*) > 1)
        SELECT * EXCLUDE (h) FROM ev_f ANTI JOIN dup USING (h)
        UNION ALL
        SELECT * EXCLUDE (h) FROM (SELECT * FROM ev_f SEMI JOIN dup USING (h))
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received) = 1""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE imp AS
        SELECT * REPLACE (coalesce(variant, '') AS variant) FROM ({src[1]})
        {f"WHERE shopper IS NULL OR shopper NOT IN ({gone})" if gone else ""}""")


def attributed(con: duckdb.DuckDBPyConnection, root: Path, *, click_window: timedelta = timedelta(hours=24),
               purchase_window: timedelta = timedelta(days=7)) -> bool:
    """Build the tables ``ev`` (the events metrics use, once each), ``imp`` (served items), ``att``
    (the attributed events, one row each, naming the served item — ``imp``'s rowid — they are
    credited to) and ``io`` (every served item with what it earned). The logs are read once; every
    query after reads these tables. False: nothing served yet."""
    if served_sql(root) is None:
        return False
    salt = keys(root)["salt"]
    if not all(c in HEX for c in salt + "".join(erased(root))):  # inlined below: hex only
        raise ValueError("the events folder's salt or tombstones are not hex")
    gone = ", ".join(f"'{h}'" for h in sorted(erased(root)))
    key = "CASE WHEN user_id IS NOT NULL THEN 'u:' || user_id ELSE 's:' || session_id END"
    hashed = f"substr(sha256('{salt}' || {key}), 1, 16)"
    for attempt in range(3):  # a segment converted (and removed) while it was read: list the files again
        src = _sources(root)
        try:
            _read_logs(con, src, hashed, gone)
            break
        except duckdb.IOException:
            if attempt == 2:
                raise
    cw, pw = int(click_window.total_seconds()), int(purchase_window.total_seconds())
    # the shopper's salted key is computed only for the events their rec_id did not attribute
    con.execute(f"""CREATE OR REPLACE TEMP TABLE att AS
        WITH direct AS (
            SELECT e.event_id, e.type, e.price, e.quantity, i.rowid AS n, 'rec_id' AS how
            FROM ev e JOIN imp i ON e.rec_id = i.rec_id AND e.item_id = i.item_id
            WHERE e.rec_ok AND e.type IN ('click', 'cart', 'purchase')
            QUALIFY row_number() OVER (PARTITION BY e.event_id ORDER BY i.position) = 1),  -- an item listed twice
        rest AS (
            SELECT e.*, {hashed} AS shopper FROM ev e ANTI JOIN direct d USING (event_id)
            WHERE e.type IN ('click', 'cart', 'purchase')),
        touch AS (
            SELECT e.event_id, e.type, e.price, e.quantity, i.rowid AS n, 'last touch' AS how
            FROM rest e JOIN imp i ON i.item_id = e.item_id AND i.shopper = e.shopper AND i.ts <= e.ts
             AND e.ts - i.ts <= to_seconds(CASE WHEN e.type = 'click' THEN {cw} ELSE {pw} END)
            QUALIFY row_number() OVER (PARTITION BY e.event_id ORDER BY i.ts DESC) = 1)
        SELECT * FROM direct UNION ALL SELECT * FROM touch""")
    # every served item with what it earned
    con.execute("""CREATE OR REPLACE TEMP TABLE io AS
        WITH outcome AS (
            SELECT n, count(*) FILTER (type = 'click') AS clicks,
                   count(*) FILTER (type = 'cart') AS carts,
                   count(*) FILTER (type = 'purchase') AS purchases,
                   coalesce(sum(coalesce(price, 0) * coalesce(quantity, 1)) FILTER (type = 'purchase'), 0) AS revenue
            FROM att GROUP BY n)
        SELECT CAST(date_trunc('day', i.ts) AS DATE) AS day, i.ts, i.rec_id, i.item_id, i.shopper, i.team, i.placement,
                i.version, i.variant, i.position, i.score, i.propensity,
               i.channels, i.rules, coalesce(o.clicks, 0) AS clicks, coalesce(o.carts, 0) AS carts,
               coalesce(o.purchases, 0) AS purchases, coalesce(o.revenue, 0) AS revenue
        FROM imp i LEFT JOIN outcome o ON o.n = i.rowid""")
    return True


def online_table(root: Path, *, by: tuple[str, ...] = GROUPS, threads: int | None = None, **windows) -> pd.DataFrame:
    """Impressions, outcomes and rates grouped ``by`` any of ``GROUPS`` (empty: nothing served)."""
    unknown = set(by) - set(GROUPS)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; choose from {GROUPS}")
    con = connect(threads)
    if not attributed(con, root, **windows):
        return pd.DataFrame(columns=[*by, *METRICS])
    return _table(con, by)


def _table(con: duckdb.DuckDBPyConnection, by: tuple[str, ...], where: str = "", params: list | None = None
           ) -> pd.DataFrame:
    cols = ", ".join(by) if by else "'all' AS total"
    group = f"GROUP BY {', '.join(by)} ORDER BY {', '.join(by)}" if by else ""
    explode_ch = "channel" in by
    explode_rule = "rule" in by
    sql = f"""
        WITH by_channel AS (  -- an item two channels found is a row of each (then of each rule: separate levels)
            SELECT * EXCLUDE (channels), {"unnest(CASE WHEN len(channels) = 0 THEN ['none'] ELSE channels END)"
                                          if explode_ch else "NULL"} AS channel FROM io {where}),
        rows AS (
            SELECT * EXCLUDE (rules), {"unnest(CASE WHEN len(rules) = 0 THEN [''] ELSE rules END)" if explode_rule
                                       else "NULL"} AS rule FROM by_channel)
        SELECT {cols}, count(*) AS impressions, sum(clicks) AS clicks, sum(carts) AS carts,
               sum(purchases) AS purchases, sum(revenue) AS revenue
        FROM rows {group}"""
    df = con.execute(sql, params or []).df()
    counts = ["clicks", "carts", "purchases", "revenue"]
    df[counts] = df[counts].fillna(0)  # the sums of no rows
    n = df["impressions"].clip(lower=1)
    df["ctr"], df["atc_rate"], df["conversion"] = df["clicks"] / n, df["carts"] / n, df["purchases"] / n
    df["rpm"] = 1000 * df["revenue"] / n
    return df


def position_curve(root: Path, placement: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """CTR by the position a list showed an item at (the click events' ``position``), over the lists
    the pages confirmed they rendered (``list_view``): how much attention each position gets, when
    the items are in random order (the simulator's shuffled pages), or the whole page's shape."""
    con = connect(threads)
    if not attributed(con, root):
        return pd.DataFrame(columns=["position", "lists", "clicks", "ctr"])
    return _curve(con, placement)


def _curve(con: duckdb.DuckDBPyConnection, placement: str | None = None) -> pd.DataFrame:
    where = "WHERE placement = ?" if placement else ""
    return con.execute(f"""
        WITH rendered AS (SELECT DISTINCT rec_id FROM ev WHERE type = 'list_view' AND rec_ok),
             lists AS (SELECT DISTINCT rec_id FROM imp JOIN rendered USING (rec_id) {where}),
             shown AS (SELECT i.position, count(*) AS lists FROM imp i JOIN lists USING (rec_id) GROUP BY i.position),
             clicked AS (SELECT position, count(*) AS clicks FROM ev WHERE type = 'click' AND rec_ok
                         AND rec_id IN (SELECT rec_id FROM lists) GROUP BY position)
        SELECT s.position, s.lists, coalesce(c.clicks, 0) AS clicks, coalesce(c.clicks, 0) / s.lists AS ctr
        FROM shown s LEFT JOIN clicked c USING (position) ORDER BY s.position""", [placement] if placement else []).df()


def report(root: Path, threads: int | None = None, **windows) -> dict[str, pd.DataFrame] | None:
    """The console's Online page in one read of the logs: totals; per day × placement; per channel;
    per rule (what the items it moved earned; '' = no rule); per bundle version × variant; the
    position-CTR curve. None: nothing served yet."""
    con = connect(threads)
    if not attributed(con, root, **windows):
        return None
    return {"totals": _table(con, ()), "daily": _table(con, ("day", "placement")),
            "channels": _table(con, ("channel",)), "rules": _table(con, ("rule",)),
            "versions": _table(con, ("version", "variant")), "positions": _curve(con)}


def served_exposure(root: Path, version: str, threads: int | None = None) -> tuple[pd.DataFrame, int, int] | None:
    """What ``version`` really served: (item_id, n) rows, the number of lists, and the lists no
    personal channel (tower, item2item) contributed to — the fallback pages. None: nothing served."""
    con = connect(threads)
    if not attributed(con, root):
        return None
    con.execute("CREATE TEMP TABLE mine AS SELECT rec_id, item_id, channels FROM imp WHERE version = ?", [version])
    counts = con.execute("SELECT item_id, count(*) AS n FROM mine GROUP BY item_id").df()
    lists, fallback = con.execute("""SELECT count(*), count(*) FILTER (NOT personal) FROM (
        SELECT rec_id, bool_or(list_has_any(channels, ['tower', 'item2item'])) AS personal FROM mine GROUP BY rec_id)
        """).fetchone()
    return (counts, int(lists), int(fallback)) if lists else None
