"""fashion-shop's funnels (pipelines/fashion_funnels.py): revisits, returns to left carts and re-bought
consumables, drawn on top of the unchanged base events, the same whether appended or not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.fashion_shop import append_days
from pipelines.validate import validate, write_validated
from tests.conftest import build_tiny_shop

FUNNELS = {"revisit_share": 0.8, "consumables": ("T-shirt/top", "Trouser"), "repurchase_days": 6.0, "p_rebuy": 0.9,
           "complements": (("Dress", "Bag"), ("Coat", "Sandal")), "p_complement": 0.6}


@pytest.fixture(scope="module")
def shops(fake_fmnist, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("funnels")
    off = build_tiny_shop(root / "off", fake_fmnist, days=30)
    on = build_tiny_shop(root / "on", fake_fmnist, days=30, **FUNNELS)
    return (pd.read_parquet(off / "events.parquet"), pd.read_parquet(on / "events.parquet"),
            pd.read_parquet(on / "items.parquet"), pd.read_parquet(on / "truth" / "partners.parquet"))


def _key(e: pd.DataFrame) -> pd.Series:
    return e["user_id"].astype(str) + "|" + e["item_id"].astype(str) + "|" + e["event"].astype(str) + "|" + \
        e["ts"].astype(str)


def test_funnels_add_to_the_base_events_and_change_none(shops) -> None:
    """Only a base purchase of something already bought goes (nobody buys the same dress twice)."""
    off, on, _, _ = shops
    assert set(_key(off[off["event"] != "purchase"])) <= set(_key(on)) and len(on) > 1.2 * len(off)


def test_shoppers_come_back_to_what_they_touched(shops) -> None:
    off, on, _, _ = shops

    def repeat_share(e: pd.DataFrame) -> float:
        day = e["ts"].dt.floor("D")
        days = e.assign(day=day).groupby(["user_id", "item_id"])["day"].nunique()
        return float((days > 1).mean())

    # items touched on more than one day (a 400-item catalog repeats by chance too: 18 % without funnels)
    assert repeat_share(on) > 1.5 * repeat_share(off)


def test_left_carts_are_bought_on_return_and_consumables_are_bought_again(shops) -> None:
    off, on, items, _ = shops
    cat = items.set_index("item_id")["category"]
    buys = on[on["event"] == "purchase"]
    n = buys.groupby(["user_id", "item_id"]).size()
    again = n[n > 1].reset_index()
    assert len(again) > 0 and set(cat.loc[again["item_id"]]) <= set(FUNNELS["consumables"])  # only consumables
    base_n = off[off["event"] == "purchase"].groupby(["user_id", "item_id"]).size()
    assert (base_n > 1).sum() > 0  # the memoryless base buys a few things twice; with funnels, only consumables
    carts = on[on["event"] == "cart"].groupby(["user_id", "item_id"])["ts"].min()
    later = buys.groupby(["user_id", "item_id"])["ts"].max()
    both = carts.index.intersection(later.index)
    returned = (later[both] - carts[both]) > pd.Timedelta(hours=6)  # bought in a later session than the first cart
    assert returned.sum() > 0


def test_complements_are_bought_in_the_same_session_from_few_partners(shops) -> None:
    """After a dress, a bag a minute later more often than without funnels, and the bags bought right
    after one dress are few: its partners, as the truth tables list them."""
    off, on, items, partners = shops
    cat = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"]

    def pairs(e: pd.DataFrame) -> pd.DataFrame:
        b = e[e["event"] == "purchase"].assign(item_id=lambda d: d["item_id"].astype(str))
        m = b.merge(b, on="user_id", suffixes=("", "_2"))
        gap = (m["ts_2"] - m["ts"]).dt.total_seconds()
        return m[(gap > 0) & (gap < 600) & (m["item_id"].map(cat) == "Dress") & (m["item_id_2"].map(cat) == "Bag")]

    with_, without = pairs(on), pairs(off)
    assert len(with_) >= 5 and len(with_) > 3 * len(without)
    per_dress = with_.groupby("item_id")["item_id_2"].nunique()
    assert per_dress.max() <= 3
    truth = set(zip(partners["item_id"].astype(str), partners["partner_id"].astype(str), strict=True))
    hits = sum((a, b) in truth for a, b in zip(with_["item_id"], with_["item_id_2"], strict=True))
    assert hits >= 0.8 * len(with_)  # the rest: a base-event bag bought by chance within ten minutes


def test_appending_days_with_funnels_equals_one_run(fake_fmnist, tmp_path: Path) -> None:
    a = build_tiny_shop(tmp_path / "a", fake_fmnist, days=10, **FUNNELS)
    shutil.copytree(a, tmp_path / "b")
    for d in (2, 3):
        raw = append_days(a, d, fake_fmnist)
        write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=a), a)
    raw = append_days(tmp_path / "b", 5, fake_fmnist)
    write_validated(validate(raw["items"], raw["users"], raw["events"], image_root=tmp_path / "b"), tmp_path / "b")
    ea, eb = (pd.read_parquet(d / "events.parquet") for d in (a, tmp_path / "b"))
    pd.testing.assert_frame_equal(ea, eb)
