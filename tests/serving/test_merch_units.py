"""Analytics, rules, explanations and saliency against hand-computed examples."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from bundle.photo_predictions import PhotoPredictions
from recsys.channels import Candidates
from recsys.features import Vocab
from recsys.rank_features import ItemStats
from serving import analytics as an
from serving.catalog import Catalog
from serving.explain import reasons
from serving.rules import Rule, RuleEffect, RulePlan, RuleSet, page_category
from serving.saliency import occlusion_saliency


def test_gini_by_hand():
    assert an.gini(np.array([1, 1, 1, 1])) == 0.0
    # sorted [0, 0, 0, 4]: sum (2i - n - 1) x_i = (8 - 5) * 4 = 12; / (n * sum) = 16 -> 0.75
    assert an.gini(np.array([4, 0, 0, 0])) == pytest.approx(0.75)
    # [1, 2, 3]: (-2 * 1 + 0 * 2 + 2 * 3) / (3 * 6) = 4 / 18
    assert an.gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)
    assert an.gini(np.zeros(5)) == 0.0


def test_coverage_and_long_tail_by_hand():
    counts = np.array([0, 2, 0, 1, 5, 3])
    live = np.array([True, True, False, True, True, True])
    assert an.coverage(counts, live) == pytest.approx(4 / 5)  # rows 1, 3, 4, 5 of the 5 live ones
    bands = {b["band"]: b["items"] for b in an.long_tail(counts, live)}
    assert bands == {"0": 1, "1": 1, "2-3": 2, "4-7": 1}


def test_by_category_most_and_never():
    counts = np.array([3, 0, 3, 7, 0, 1])
    category = np.array(["a", "a", "a", "b", "b", "a"], dtype=object)
    live = np.array([True, True, True, True, True, False])
    out = {c["category"]: c for c in an.by_category(counts, category, live, top=2)}
    assert out["a"]["items"] == 3 and out["a"]["never"] == 1
    assert out["a"]["most"] == [(0, 3), (2, 3)]  # ties: lower row first; row 5 is not live
    assert out["a"]["never_sample"] == [1]
    assert out["b"]["most"] == [(3, 7)] and out["b"]["never_sample"] == [4]


def _fake_bundle(categories, predicted, confidence, p_category, live=None):
    n = len(categories)
    names = ["Bag", "Coat", "Shirt"]
    vocab = Vocab(values=sorted(set(categories) | set(names)))
    items = pd.DataFrame({"item_id": [f"i{r}" for r in range(n)], "title": [f"t{r}" for r in range(n)],
                          "category": categories, "price": 1.0, "in_stock": True})
    z = np.zeros(n, np.float32)
    stats = ItemStats(category=vocab.encode(categories), log_price=z, popularity=z, recent=z, age_days=z, image=None)
    return SimpleNamespace(
        photos=PhotoPredictions(np.array(predicted, np.int16), np.array(confidence, np.float32),
                                np.array(p_category, np.float32)),
        image_model=SimpleNamespace(class_names=names), catalog=Catalog(items, stats, vocab),
        items_index=SimpleNamespace(live=np.array(live if live is not None else [True] * n)))


def test_photos_to_check_ranked_by_exposure():
    # rows 0, 1, 3 are suspects (another category, confident, catalog's own category unlikely);
    # row 2 agrees with the catalog, row 4 is not confident, row 5 is hidden.
    b = _fake_bundle(["Bag", "Bag", "Coat", "Shirt", "Shirt", "Bag"], [1, 2, 1, 0, 0, 1],
                     [0.95, 0.99, 0.99, 0.91, 0.6, 0.99], [0.01, 0.0, 0.99, 0.02, 0.3, 0.0],
                     live=[True, True, True, True, True, False])
    counts = np.array([5, 1, 9, 5, 50, 80])
    got = an.photos_to_check(b, counts, decided=set())
    # exposure first (5, 5, 1); equal exposure: the more confident first (row 0 0.95 > row 3 0.91)
    assert [g["item_id"] for g in got] == ["i0", "i3", "i1"]
    assert got[0]["predicted"] == "Coat" and got[0]["recommended"] == 5
    assert [g["item_id"] for g in an.photos_to_check(b, counts, decided={"i3"})] == ["i0", "i1"]
    conf = an.confusion(b)  # live rows only: (Bag->Coat), (Bag->Shirt), (Coat->Coat), (Shirt->Bag) x2
    assert conf["matrix"] == [[0, 1, 1], [0, 1, 0], [2, 0, 0]]


def test_rule_validation():
    with pytest.raises(ValidationError, match="exactly one"):
        Rule(action="boost", item_id="a", category="Bag")
    with pytest.raises(ValidationError, match="pin needs"):
        Rule(action="pin", category="Bag", slot=1)
    with pytest.raises(ValidationError, match="slot is for pins"):
        Rule(action="bury", item_id="a", slot=2)
    with pytest.raises(ValidationError, match="not after"):
        Rule(action="exclude", item_id="a", starts_at=datetime(2026, 2, 1), ends_at=datetime(2026, 1, 1))


def test_rules_active_window_and_scope():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    rs = RuleSet([Rule(rule_id="past", action="exclude", item_id="a", ends_at=now - timedelta(days=1)),
                  Rule(rule_id="later", action="exclude", item_id="a", starts_at=now + timedelta(hours=1)),
                  Rule(rule_id="now", action="exclude", item_id="a", starts_at=datetime(2026, 5, 1)),  # naive: UTC
                  Rule(rule_id="bags", action="boost", item_id="a", scope="Bag")])
    assert [r.rule_id for r in rs.for_request(now, None)] == ["now"]
    assert [r.rule_id for r in rs.for_request(now, "Bag")] == ["now", "bags"]
    assert page_category(["Bag"]) == "Bag" and page_category(["Bag", "Coat"]) is None and page_category(None) is None


def test_exclude_boost_bury_pin_by_hand():
    row_of = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5}
    category = np.array(["X", "Y", "X", "Y", "Z", "Z"], dtype=object)
    codes = {"X": 0, "Y": 1, "Z": 2}
    catalog = SimpleNamespace(row_of=row_of, codes=np.array([codes[c] for c in category]), category_names=list(codes),
                              code_of=lambda cs: np.array([codes[c] for c in cs]))
    excl = [Rule(rule_id="no-e", action="exclude", item_id="e"), Rule(rule_id="no-y", action="exclude", category="Y"),
            Rule(rule_id="up-d", action="boost", item_id="d")]
    gone = RulePlan(excl, catalog).excluded()
    assert sorted(gone.tolist()) == [1, 3, 4]  # e, and both Y rows; a boost excludes nothing
    ranked = np.array([0, 1, 2, 3])
    eff = RuleEffect()
    rules = [Rule(rule_id="up-d", action="boost", item_id="d", positions=2),
             Rule(rule_id="down-x", action="bury", category="X", positions=1)]
    # keys 0..3; d: 3 - 2 = 1; X rows 0, 2: 0 + 1 = 1, 2 + 1 = 3 -> row0 1, row1 1, row2 3, row3 1
    out = ranked[RulePlan(rules, catalog).move(ranked, eff)]
    assert out.tolist() == [0, 1, 3, 2]  # stable among equal keys
    assert eff.by_row[3] == ["up-d"] and eff.by_row[0] == ["down-x"] and 1 not in eff.by_row
    pins = [Rule(rule_id="p2", action="pin", item_id="f", slot=2),
            Rule(rule_id="p1", action="pin", item_id="c", slot=1),
            Rule(rule_id="pz", action="pin", item_id="b", slot=1)]
    allowed = lambda r: r != 1  # noqa: E731  (b is filtered out: its pin does nothing)
    got = RulePlan(pins, catalog).place(out, allowed, eff)
    assert got.tolist() == [2, 5, 0, 1, 3]  # c moved to slot 1, f (not ranked) inserted at slot 2
    assert eff.by_row[5] == ["p2"] and "p1" in eff.by_row[2]


def test_reasons_by_hand():
    vectors = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], np.float32)
    ids = ["a", "b", "c", "d"]
    ch = Candidates(rows=np.array([2, 3, 1]), tower_rank=np.array([0, 2000, 1.0]),
                    item2item_rank=np.array([2000, 0, 2000.0]), category_popular_rank=np.array([1, 2000, 2000.0]),
                    item2item_score=np.zeros(3), item2item_recent_score=np.zeros(3))
    out = reasons(vectors, ids, page=np.array([3, 2, 1]), history=np.array([0, 1]), retrieved=np.array([2, 3, 1]),
                  ranked=np.array([3, 2, 1]), channels=ch, rules_by_row={1: ["r9"]}, fallback=None)
    assert out[0] == {"channels": ["item2item"], "because_of": "b", "retrieved_at": 2, "ranked_at": 1, "rules": []}
    assert out[1]["channels"] == ["tower", "category_popular"] and out[1]["because_of"] == "a"
    assert out[2]["because_of"] == "a"  # b is in the history: it is not its own reason
    assert out[2]["rules"] == ["r9"]


def test_occlusion_saliency_finds_the_region_the_model_uses():
    # a "model" whose class-1 probability is the mean of the top-left 8x8 corner
    def probs(x):
        p1 = x[:, 0, :8, :8].mean((1, 2)).clip(0, 1)
        return np.stack([1 - p1, p1], 1)
    img = np.zeros((1, 1, 28, 28), np.float32)
    img[0, 0, :8, :8] = 1.0
    img[0, 0, 20:, 20:] = 1.0  # bright but ignored by the model
    heat = occlusion_saliency(probs, img, target=1)
    assert heat.shape == (28, 28) and heat.max() == pytest.approx(1.0) and heat.min() >= 0
    assert heat[:8, :8].mean() > 0.3 and heat[20:, 20:].max() == 0.0
