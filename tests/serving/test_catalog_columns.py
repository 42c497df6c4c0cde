import numpy as np
import pandas as pd

from serving.catalog_columns import RowIndex, labels, strings, timestamp, utc_times


def test_row_index_finds_every_id_like_a_dict_and_takes_live_additions() -> None:
    rng = np.random.default_rng(0)
    ids = [f"sku-{x}" for x in rng.permutation(5000)] + ["", "é-ünïcode", "z" * 40]
    index = RowIndex(strings(ids))
    truth = {i: r for r, i in enumerate(ids)}
    probe = ids[::7] + ["sku-5000", "missing", "a", "zzzz" * 20]
    assert [index.get(i) for i in probe] == [truth.get(i) for i in probe]
    assert index.rows(["missing", ids[3], ids[1]]).tolist() == [3, 1]
    index["new-1"] = len(ids)
    assert index.get("new-1") == len(ids) and "new-1" in index and "new-2" not in index


def test_columns_keep_values_and_share_category_strings() -> None:
    items = pd.DataFrame({"category": ["Bag", "Shirt", "Bag"], "created_at": pd.to_datetime(
        ["2026-01-02T03:04:05+01:00", None, "2026-06-01T00:00:00Z"], utc=True)})
    cats = labels(items["category"])
    assert cats.tolist() == ["Bag", "Shirt", "Bag"] and cats[0] is cats[2]
    ts = utc_times(items)
    assert timestamp(ts[0]) == pd.Timestamp("2026-01-02T02:04:05Z") and timestamp(ts[1]) is None
    assert all(timestamp(t) is None for t in utc_times(items.drop(columns="created_at")))
    s = np.append(strings(["a", "b"]), strings(["c"]))
    assert s.dtype == strings([]).dtype and s[2] == "c" and isinstance(s[0], str)


def test_row_index_resolves_hash_collisions_by_the_id(monkeypatch) -> None:
    import serving.catalog_columns as cc

    monkeypatch.setattr(cc, "_hashes", lambda ids: np.zeros(len(list(ids)), np.uint64))  # every id collides
    index = RowIndex(strings(["b", "a", "c"]))
    assert [index.get(i) for i in ("a", "b", "c", "d")] == [1, 0, 2, None]
