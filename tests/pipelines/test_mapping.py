"""Mapping a shop's export onto the canonical tables (pipelines/mapping.py) and appending a night's
export (pipelines/incremental.py), on hand-made frames whose right answer is known."""

from pathlib import Path

import pandas as pd
import pytest

from pipelines.incremental import merge_items
from pipelines.mapping import ImportMap, MappingError, apply_map, infer_map, parse_times


def test_pairs_and_files_merge_in_order(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("columns: {sku: item_id}\nevents: {order: purchase}\ntimestamps: {timezone: Europe/Paris}\n")
    m = ImportMap.from_args([str(f), "cust=user_id", "event:add_to_cart=cart", "ts-format=%d/%m/%Y"])
    assert m.columns == {"sku": "item_id", "cust": "user_id"}
    assert m.events == {"order": "purchase", "add_to_cart": "cart"}
    assert m.timestamps == {"timezone": "Europe/Paris", "format": "%d/%m/%Y"}
    assert ImportMap.from_args([str(f)]).to_yaml().startswith("columns:")


@pytest.mark.parametrize("bad, match", [("sku=itemid", "not a field"), ("event:x=like", "must be one of")])
def test_a_wrong_entry_is_refused_by_name(bad: str, match: str) -> None:
    with pytest.raises(MappingError, match=match):
        ImportMap.from_args([bad])


def test_apply_map_renames_maps_events_and_reads_local_times() -> None:
    raw = pd.DataFrame({"cust": ["a", "b", "c"], "sku": ["S1", "S2", "S3"], "action": ["order", "wish", "view"],
                        "when": ["31/12/2026 23:30", "01/07/2026 12:00", "nope"]})
    m = ImportMap({"cust": "user_id", "sku": "item_id", "action": "event", "when": "ts"},
                  {"order": "purchase", "wish": "drop"}, {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"})
    out, dropped = apply_map("events", raw, m, "e.csv")
    assert dropped == {"wish": 1} and list(out["event"]) == ["purchase", "view"]
    assert out["ts"][0] == pd.Timestamp("2026-12-31 22:30", tz="UTC")  # CET is UTC+1 in winter
    assert out["ts"][1] == "nope"  # left as text: validation rejects the row by name


def test_summer_time_and_a_required_field_no_column_provides() -> None:
    ts = parse_times(pd.Series(["01/07/2026 12:00"]), {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"})
    assert ts[0] == pd.Timestamp("2026-07-01 10:00", tz="UTC")  # CEST is UTC+2
    with pytest.raises(MappingError, match=r"events: missing required column\(s\) \['ts'\] in e.csv"):
        apply_map("events", pd.DataFrame({"user_id": ["a"], "item_id": ["b"], "event": ["view"]}), ImportMap(),
                  "e.csv")


def test_infer_reads_headers_event_names_and_the_time_format() -> None:
    events = pd.DataFrame({"Customer ID": ["c1", "c2"] * 50, "SKU": ["s1", "s2"] * 50,
                           "Event Type": ["Page View", "Add-To-Cart"] * 50,
                           "occurred": ["13/11/2026 10:00", "14/11/2026 11:30"] * 50})
    items = pd.DataFrame({"SKU": ["s1", "s2"], "Department": ["Shoes", "Bags"], "Unit Price": ["1", "2"]})
    m = infer_map({"items": items, "events": events, "users": None})
    assert m.columns == {"SKU": "item_id", "Department": "category", "Unit Price": "price",
                         "Customer ID": "user_id", "Event Type": "event", "occurred": "ts"}
    assert m.events == {"Page View": "view", "Add-To-Cart": "cart"}
    assert m.timestamps == {"format": "%d/%m/%Y %H:%M"}


def test_merge_items_upserts_and_counts() -> None:
    ts = pd.Timestamp("2026-01-01", tz="UTC")
    cur = pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"], "category": ["x", "y"], "price": [1.0, 2.0],
                        "in_stock": [True, True], "image": [None, None], "created_at": [ts, ts]})
    new = pd.DataFrame({"item_id": ["b", "a", "c"], "title": ["B", "A", "C"], "category": ["y", "x", "z"],
                        "price": [5.0, 1.0, 3.0], "in_stock": [True, True, False], "image": [None, None, None],
                        "created_at": [ts + pd.Timedelta(days=9)] * 3})
    merged, added, updated = merge_items(cur, new)
    assert (added, updated) == (1, 1)
    m = merged.set_index("item_id")
    assert m.loc["b", "price"] == 5.0 and m.loc["b", "created_at"] == ts  # the first created_at stays
    assert list(merged["item_id"]) == ["a", "b", "c"] and not m.loc["c", "in_stock"]
