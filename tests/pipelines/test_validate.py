from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipelines.tables import EVENTS, ITEMS, read_table
from pipelines.validate import DataValidationError, validate, write_validated


def _items(image_root: Path) -> pd.DataFrame:
    (image_root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(1, 5):
        Image.new("L", (8, 8), 40 * i).save(image_root / "img" / f"{i}.png")
    return pd.DataFrame({
        "item_id": [1, 2, 3, 4],
        "title": ["a", "b", "c", "d"],
        "category": ["shoe", "shoe", "bag", "bag"],
        "price": ["10.5", "20", "30", "40"],
        "in_stock": ["true", "false", "1", "yes"],
        "image": [f"img/{i}.png" for i in range(1, 5)],
        "created_at": ["2024-01-01", "2024-01-02T10:00:00+02:00", "1704067200", "1704067200000"],
    })


EVENTS_OK = pd.DataFrame({
    "user_id": ["u1", "u1", "u2"],
    "item_id": ["1", "2", "3"],
    "event": ["view", "Cart", "purchase"],
    "ts": ["2024-02-01T00:00:00Z", 1706745600, "2024-02-02"],
})

# One row wrong in exactly one way -> the reason the report must give.
BAD_ITEMS = [
    ({"item_id": 1}, "duplicate item_id (1)"),
    ({"item_id": None}, "missing item_id"),
    ({"price": "-3"}, "negative price (-3.0)"),
    ({"price": "cheap"}, "price is not a number (cheap)"),
    ({"in_stock": "maybe"}, "in_stock is not a boolean (maybe)"),
    ({"created_at": "last tuesday"}, "unparseable created_at (last tuesday)"),
    ({"image": "img/missing.png"}, "missing image file (img/missing.png)"),
    ({"image": "../etc/passwd"}, "image path escapes the dataset root"),
    ({"category": None}, "missing category"),
]
BAD_EVENTS = [
    ({"item_id": "999"}, "unknown item_id (999)"),
    ({"user_id": None}, "missing user_id"),
    ({"event": "wishlist"}, "event must be one of"),
    ({"ts": "yesterday-ish"}, "unparseable ts (yesterday-ish)"),
]


def test_valid_tables_are_coerced_to_the_canonical_model(tmp_path: Path) -> None:
    v = validate(_items(tmp_path), None, EVENTS_OK, image_root=tmp_path)
    assert v.rejected.empty
    ITEMS.validate(v.items)
    EVENTS.validate(v.events)
    assert v.items["item_id"].tolist() == ["1", "2", "3", "4"]
    assert v.items["in_stock"].tolist() == [True, False, True, True]
    # ISO with offset, epoch seconds and epoch milliseconds all land on UTC instants.
    ts = v.items["created_at"].astype(str).tolist()
    assert ts == ["2024-01-01 00:00:00+00:00", "2024-01-02 08:00:00+00:00",
                  "2024-01-01 00:00:00+00:00", "2024-01-01 00:00:00+00:00"]
    assert v.events["event"].tolist() == ["view", "cart", "purchase"]
    assert sorted(v.users["user_id"]) == ["u1", "u2"]  # derived from events


@pytest.mark.parametrize(("change", "reason"), BAD_ITEMS)
def test_each_bad_item_row_is_rejected_with_its_reason(tmp_path: Path, change: dict, reason: str) -> None:
    items = _items(tmp_path)
    bad = {**items.iloc[3].to_dict(), "item_id": 5, **change}
    items = pd.concat([items, pd.DataFrame([bad])], ignore_index=True)
    v = validate(items, None, EVENTS_OK, image_root=tmp_path)
    assert len(v.items) == 4 and v.rejected["row"].tolist() == [5]
    assert v.rejected["table"].tolist() == ["items"]
    assert reason in v.rejected["reason"].iloc[0]


@pytest.mark.parametrize(("change", "reason"), BAD_EVENTS)
def test_each_bad_event_row_is_rejected_with_its_reason(tmp_path: Path, change: dict, reason: str) -> None:
    ev = pd.concat([EVENTS_OK, pd.DataFrame([{**EVENTS_OK.iloc[0].to_dict(), **change}])], ignore_index=True)
    v = validate(_items(tmp_path), None, ev, image_root=tmp_path)
    assert len(v.events) == 3
    assert v.rejected["row"].tolist() == [4]
    assert reason in v.rejected["reason"].iloc[0]


def test_events_of_a_rejected_item_are_rejected_too(tmp_path: Path) -> None:
    items = _items(tmp_path)
    items.loc[0, "price"] = "-1"
    v = validate(items, None, EVENTS_OK, image_root=tmp_path)
    assert v.rejected.groupby("table").size().to_dict() == {"events": 1, "items": 1}


def test_unknown_user_when_a_users_table_is_given(tmp_path: Path) -> None:
    users = pd.DataFrame({"user_id": ["u1"], "segment": ["a"]})
    v = validate(_items(tmp_path), users, EVENTS_OK, image_root=tmp_path)
    assert v.rejected["reason"].tolist() == ["unknown user_id (u2)"]
    assert "segment" in v.users.columns


def test_missing_column_is_named() -> None:
    with pytest.raises(DataValidationError, match=r"missing required column\(s\) \['price'\]"):
        validate(pd.DataFrame({"item_id": [1], "category": ["x"]}), None, EVENTS_OK)


def test_threshold_fails_but_keeps_the_rejection_report(tmp_path: Path) -> None:
    items = _items(tmp_path)
    items.loc[0, "price"] = "-1"  # 1 of 4 items bad = 25 %
    v = validate(items, None, EVENTS_OK, image_root=tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DataValidationError, match="too many bad rows"):
        write_validated(v, out, max_bad_share=0.2)
    assert (out / "rejected.csv").exists() and not (out / "items.parquet").exists()
    rejected = pd.read_csv(out / "rejected.csv")
    assert rejected["reason"].str.contains("negative price").any()
    assert '"price": "-1"' in rejected.loc[rejected["table"] == "items", "record"].iloc[0]
    write_validated(v, out, max_bad_share=0.5)
    assert read_table(out / "items.parquet")["item_id"].tolist() == ["2", "3", "4"]
