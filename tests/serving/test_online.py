"""Online metrics (serving/online.py) against a hand-computed example: two served lists, events with
and without rec_ids, a forged one, a duplicate, one outside the window, an erased shopper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundle.log_erasure import erase
from bundle.logs import convert, keys, shopper_hash
from serving.online import online_table, position_curve, report, served_exposure
from serving.served_log import RecTokens

T = 1_790_000_000_000  # epoch ms
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    k = keys(root)
    tok = RecTokens(k["rec_key"])
    a, b = tok.new(), tok.new()
    salt = k["salt"]
    it = lambda *v: dict(zip(("item_id", "position", "channels", "pre_rank", "rules", "score"), v, strict=True))  # noqa: E731
    served = [
        {"rec_id": a, "ts": T, "route": "recommendations", "placement": "home",
         "shopper": shopper_hash(salt, "u1", None), "version": "v1", "variant": None,
         "items": [it("i1", 1, ["tower"], 1, [], 0.9), it("i2", 2, ["item2item", "tower"], 5, ["r1"], 0.8),
                   it("i3", 3, ["category_popular"], 3, [], 0.7)]},
        {"rec_id": b, "ts": T + 10 * MIN, "route": "similar-behaviour", "placement": "product",
         "shopper": shopper_hash(salt, None, "s9"), "version": "v1", "variant": None,
         "items": [it("i1", 1, [], 1, [], 0.5), it("i4", 2, [], 2, [], 0.4)]}]
    ev = lambda eid, typ, **kw: {"event_id": eid, "type": typ, "user_id": None, "session_id": None, "item_id": None,  # noqa: E731
                                 "rec_id": None, "rec_ok": None, "position": None, "placement": None, "price": None,
                                 "quantity": None, "order_id": None, "known_item": True, "received": kw["ts"]} | kw
    events = [
        ev("e1", "click", user_id="u1", item_id="i2", rec_id=a, rec_ok=True, position=2, ts=T + MIN),  # direct
        ev("e2", "click", user_id="u1", item_id="i1", rec_id="rforged.x", rec_ok=False, position=1, ts=T + HOUR),
        ev("e3", "purchase", user_id="u1", item_id="i2", price=10.0, quantity=2, ts=T + 2 * DAY),  # last touch: A
        ev("e4", "click", session_id="s9", item_id="i4", ts=T + 30 * MIN),  # last touch: B
        ev("e5", "click", user_id="u1", item_id="i3", ts=T + 3 * DAY),  # past the click window: organic
        ev("e1", "click", user_id="u1", item_id="i2", rec_id=a, rec_ok=True, position=2, ts=T + MIN),  # a retry
        ev("e7", "cart", session_id="s9", item_id="i1", rec_id=b, rec_ok=True, position=1, ts=T + 20 * MIN),
        ev("e8", "list_view", user_id="u1", rec_id=a, rec_ok=True, ts=T),
        ev("e9", "click", user_id="gone", item_id="i1", ts=T + MIN)]  # an erased shopper: counts nowhere
    (root / "closed").mkdir(parents=True)
    seg = root / "closed" / f"served-test-1-{T}.jsonl"
    seg.write_text("".join(json.dumps(s) + "\n" for s in served))
    convert(root, seg)  # the served lists from Parquet, the events from an open segment: both paths
    (root / "open").mkdir()
    (root / "open" / f"events-test-1-{T}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    erase(root, {shopper_hash(salt, "gone", None)})
    return root


def test_per_placement_by_hand(root: Path) -> None:
    t = online_table(root, by=("placement",)).set_index("placement")
    home, product = t.loc["home"], t.loc["product"]
    assert (home.impressions, home.clicks, home.carts, home.purchases, home.revenue) == (3, 2, 0, 1, 20.0)
    assert (product.impressions, product.clicks, product.carts, product.purchases) == (2, 1, 1, 0)
    assert home.ctr == pytest.approx(2 / 3) and home.conversion == pytest.approx(1 / 3)
    assert home.rpm == pytest.approx(1000 * 20 / 3) and product.atc_rate == pytest.approx(0.5)


def test_per_channel_and_rule_by_hand(root: Path) -> None:
    ch = online_table(root, by=("channel",)).set_index("channel")
    assert ch.loc["tower"].impressions == 2 and ch.loc["tower"].clicks == 2  # i1 and i2 of the home list
    assert ch.loc["item2item"].impressions == 1 and ch.loc["item2item"].clicks == 1
    assert ch.loc["category_popular"].clicks == 0 and ch.loc["none"].impressions == 2  # the similar list
    rules = online_table(root, by=("rule",)).set_index("rule")
    assert (rules.loc["r1"].impressions, rules.loc["r1"].clicks, rules.loc["r1"].revenue) == (1, 1, 20.0)
    assert rules.loc[""].impressions == 4


def test_the_full_grouping_and_the_position_curve(root: Path) -> None:
    full = online_table(root)
    assert list(full.columns[:7]) == ["day", "placement", "version", "variant", "channel", "rule", "position"]
    assert full["impressions"].sum() == 6 and full["clicks"].sum() == 4  # i2's click counts in both its channels
    i2 = full[(full["rule"] == "r1")]  # channels x rules: i2 (two channels, one rule) in two rows, both with r1
    assert sorted(i2["channel"]) == ["item2item", "tower"] and i2["clicks"].tolist() == [1, 1]
    curve = position_curve(root, "home").set_index("position")
    assert curve["lists"].tolist() == [1, 1, 1] and curve["clicks"].tolist() == [0, 1, 0]  # the forged click: not
    counts, lists, fallback = served_exposure(root, "v1")
    assert counts.set_index("item_id")["n"].to_dict() == {"i1": 2, "i2": 1, "i3": 1, "i4": 1}
    assert (lists, fallback) == (2, 1)  # the similar list: no personal channel
    assert served_exposure(root, "v2") is None


def test_the_report_reads_once_and_agrees(root: Path) -> None:
    r = report(root)
    assert r["totals"].iloc[0][["impressions", "clicks", "carts", "purchases"]].tolist() == [5, 3, 1, 1]
    assert r["daily"].set_index("placement").loc["home"].clicks == 2
    assert r["rules"].set_index("rule").loc["r1"].revenue == 20.0
    assert r["positions"]["clicks"].tolist() == [0, 1, 0]


def test_nothing_served_yet_is_an_empty_table(tmp_path: Path) -> None:
    assert online_table(tmp_path / "events").empty and position_curve(tmp_path / "events").empty
    assert report(tmp_path / "events") is None
