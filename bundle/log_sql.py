"""The service's logs (bundle/logs.py) as DuckDB SQL: one place knows their columns. The converted
Parquet segments are read as they are; the JSON-lines segments not converted yet (open, or closed
within the grace period) with the same columns, so a query sees everything written so far.

Timestamps come out as TIMESTAMP (the logs hold epoch milliseconds). Paths are quoted here: a folder
name with a quote in it stays a string."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bundle.logs import jsonl_files, parquet_files

EVENT_JSON = ("{event_id: 'VARCHAR', type: 'VARCHAR', user_id: 'VARCHAR', session_id: 'VARCHAR', item_id: 'VARCHAR', "
              "ts: 'BIGINT', received: 'BIGINT', rec_id: 'VARCHAR', rec_ok: 'BOOLEAN', position: 'INTEGER', "
              "placement: 'VARCHAR', price: 'DOUBLE', quantity: 'INTEGER', order_id: 'VARCHAR', known_item: 'BOOLEAN'}")
SERVED_JSON = ("{rec_id: 'VARCHAR', ts: 'BIGINT', route: 'VARCHAR', placement: 'VARCHAR', shopper: 'VARCHAR', "
               "version: 'VARCHAR', variant: 'VARCHAR', items: 'JSON[]'}")
NO_EVENTS = ("SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS type, NULL::VARCHAR AS user_id, NULL::VARCHAR AS "
             "session_id, NULL::VARCHAR AS item_id, NULL::TIMESTAMP AS ts, NULL::TIMESTAMP AS received, NULL::VARCHAR "
             "AS rec_id, NULL::BOOLEAN AS rec_ok, NULL::INTEGER AS position, NULL::VARCHAR AS placement, "
             "NULL::DOUBLE AS price, NULL::INTEGER AS quantity, NULL::VARCHAR AS order_id, NULL::BOOLEAN AS known_item "
             "WHERE false")


def files(paths: Sequence[Path]) -> str:
    """A DuckDB list literal of file paths."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def events_sql(root: Path, *, converted_only: bool = False, extra: Sequence[Path] = ()) -> str:
    """Every logged event row (retries not yet removed); ``converted_only``: the Parquet segments (and
    ``extra`` Parquet files, e.g. other replicas' from the bundle store) only."""
    parts = []
    if pe := [*parquet_files(root, "events"), *extra]:
        parts.append(f"SELECT * REPLACE (epoch_ms(ts) AS ts, epoch_ms(received) AS received) FROM read_parquet("
                     f"{files(pe)}, union_by_name=true)")
    if not converted_only and (je := jsonl_files(root, "events")):
        parts.append(f"SELECT * REPLACE (epoch_ms(ts) AS ts, epoch_ms(received) AS received) FROM read_json("
                     f"{files(je)}, format='newline_delimited', columns={EVENT_JSON}, ignore_errors=true)")
    return " UNION ALL BY NAME ".join(parts) if parts else NO_EVENTS


def served_sql(root: Path) -> str | None:
    """Every served item: one row per (list, position). None: no list logged yet."""
    parts = []
    if ps := parquet_files(root, "served"):
        parts.append(f"SELECT rec_id, epoch_ms(ts) AS ts, placement, shopper, version, variant, item_id, position, "
                     f"channels, rules, score, team, propensity FROM (SELECT * FROM read_parquet({files(ps)}, "
                     "union_by_name=true) "
                     "UNION ALL BY NAME SELECT NULL::VARCHAR AS team, NULL::DOUBLE AS propensity WHERE false)")
        # (the union: logs from before interleaving and exploration lack those columns)
    if js := jsonl_files(root, "served"):
        parts.append(
            "SELECT rec_id, epoch_ms(ts) AS ts, placement, shopper, version, variant, it->>'item_id' AS item_id, "
            "CAST(it->>'position' AS INTEGER) AS position, CAST(it->'channels' AS VARCHAR[]) AS channels, "
            f"CAST(it->'rules' AS VARCHAR[]) AS rules, CAST(it->>'score' AS DOUBLE) AS score, it->>'team' AS team, "
            "CAST(it->>'propensity' AS DOUBLE) AS propensity FROM (SELECT *, unnest(items) AS it "
            f"FROM read_json({files(js)}, "
            f"format='newline_delimited', columns={SERVED_JSON}, ignore_errors=true))")
    return " UNION ALL BY NAME ".join(parts) if parts else None
