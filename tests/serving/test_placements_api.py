"""``placement`` picks the candidate sources (serving/placements.py): each placement's HTTP contract
on the tiny bundle, its list the one recsys/placements.py computes, through the page's filters."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.placements import FEATURES
from tests.serving.conftest import READ, make_client


@pytest.fixture
def c(artifacts):
    with make_client(artifacts) as client:
        yield client


def _bundle(c):
    return c.app.state.service.bundle


def _post(c, **body) -> dict:
    r = c.post("/v1/recommendations", json={"k": 10, "in_stock_only": False} | body, headers=READ)
    assert r.status_code == 200, r.text
    return r.json()


def _shopper(b, want) -> tuple[str, int]:
    """A known shopper whose touches satisfy ``want``."""
    for u, row in b.shoppers.row_of.items():
        if want(b.shoppers.touched(row)):
            return u, row
    pytest.skip("no such shopper in the tiny bundle")  # never: the tiny shop has all three kinds


def test_continue_serves_the_open_items_the_model_ranks_first(c) -> None:
    b = _bundle(c)
    u, row = _shopper(b, lambda t: len(t) >= 3)
    t = b.shoppers.touched(row)
    rows, _ = b.placements.continue_rows(t)
    bought = set(b.shoppers.purchased[row].tolist())
    want = [b.catalog.item_ids[r] for r in rows.tolist() if r not in bought][:10]
    got = _post(c, user_id=u, placement="continue", explain=True, k=10)
    assert [i["item_id"] for i in got["items"]] == want and want
    assert all(i["reason"]["channels"] == ["history"] for i in got["items"])
    assert got["fallback"] is None
    assert _post(c, placement="continue")["items"] == []  # an anonymous shopper has nothing to continue


def test_buy_again_lists_only_bought_products_with_an_interval(c) -> None:
    b = _bundle(c)
    u, row = _shopper(b, lambda t: int(np.isfinite(t.buy_age).sum()) >= 2)
    t = b.shoppers.touched(row)
    bought = t.rows[np.isfinite(t.buy_age)]
    b.placements.interval[:] = np.nan
    b.placements.interval[bought[0]] = 10.0  # only this one is re-bought at an interval
    got = _post(c, user_id=u, placement="buy-again")  # purchases are the point: never excluded here
    assert [i["item_id"] for i in got["items"]] == [b.catalog.item_ids[bought[0]]]


def test_cart_serves_complements_outside_the_carts_categories(c) -> None:
    b = _bundle(c)
    codes = b.catalog.codes
    cart = 0
    other = int(np.flatnonzero(codes != codes[cart])[0])
    same = int(np.flatnonzero((codes == codes[cart]) & (np.arange(len(codes)) != cart))[0])
    m = b.placements
    m.comp_off = np.concatenate([[0], np.full(len(m.comp_off) - 1, 2)]).astype(np.int64)  # row 0: two complements
    m.comp_rows, m.comp_score = np.array([same, other], np.int64), np.array([5.0, 1.0], np.float32)
    got = _post(c, placement="cart", context_item_ids=[b.catalog.item_ids[cart]], explain=True)
    assert [i["item_id"] for i in got["items"]] == [b.catalog.item_ids[other]]  # not a near-duplicate
    assert got["items"][0]["reason"]["channels"] == ["complements"]
    assert _post(c, placement="cart", context_item_ids=["no-such-item"])["items"] == []


def test_product_placement_is_the_similar_items_of_the_product(c) -> None:
    b = _bundle(c)
    item = b.catalog.item_ids[3]
    r = c.post("/v1/recommendations", json={"placement": "product"})
    assert r.status_code == 422 and "context_item_ids" in r.json()["detail"]
    got = _post(c, placement="product", context_item_ids=[item], k=5, in_stock_only=True)
    sim = c.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
    assert [i["item_id"] for i in got["items"]] == [i["item_id"] for i in sim["items"]]
    assert item not in [i["item_id"] for i in got["items"]]


def test_home_puts_seen_items_where_the_model_says_and_discovery_only_never(c) -> None:
    b = _bundle(c)
    u, row = _shopper(b, lambda t: len(t) >= 3)
    seen = set(b.shoppers.touched(row).rows.tolist()) - set(b.shoppers.purchased[row].tolist())
    ids = lambda page: {b.catalog.row_of.rows([i["item_id"] for i in page["items"]])[j]  # noqa: E731
                        for j in range(len(page["items"]))}
    discovery = _post(c, user_id=u, discovery_only=True, k=20)
    assert not ids(discovery) & seen and len(discovery["items"]) == 20
    b.placements.coef["home"] = np.zeros(1 + len(FEATURES))
    b.placements.coef["home"][0] = 10.0  # every seen item is certain to come back: all first
    page = _post(c, user_id=u, k=20, explain=True)
    first = [i for i in page["items"][: len(seen)]]
    assert {b.catalog.row_of.rows([i["item_id"]])[0] for i in first} == seen
    assert all(i["reason"]["channels"] == ["history"] for i in first)
    b.placements.coef["home"][0] = -30.0  # never: the discovery page, seen items taken out
    never = _post(c, user_id=u, k=20)
    assert [i["item_id"] for i in never["items"]] == [i["item_id"] for i in discovery["items"]]


def test_a_bundle_without_placement_models_refuses_the_placements_that_need_them(c) -> None:
    b = _bundle(c)
    b.placements = None
    r = c.post("/v1/recommendations", json={"placement": "continue", "user_id": "x"})
    assert r.status_code == 409 and "placement models" in r.json()["detail"]
    assert _post(c, placement="category-page")["fallback"] == "popular"  # any other name: home


def test_openapi_tells_the_placement_fields(client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RecommendationRequest"]["properties"]
    assert schema["context_item_ids"]["maxItems"] == 100
    assert schema["discovery_only"]["default"] is False
    assert "buy-again" in schema["placement"]["anyOf"][0].get("examples", []) or \
        "buy-again" in schema["placement"].get("examples", [])


def test_with_the_seen_items_excluded_home_is_the_page_before_the_placements(c) -> None:
    """The masked protocol (MovieLens', the gate's): nothing seen may show, and the merge never
    reorders the ranker's list (the hit rate by rank is non-increasing), so the page is unchanged."""
    b = _bundle(c)
    b.placements.coef["home"] = np.zeros(1 + len(FEATURES))
    b.placements.coef["home"][0] = 10.0  # seen items would all come first
    b.placements.hit_rate = np.array([0.5, 0.4, 0.4, 0.1, 0.05])
    for u, row in list(b.shoppers.row_of.items())[:20]:
        seen = [b.catalog.item_ids[r] for r in b.shoppers.seen[row].tolist()]
        body = {"user_id": u, "k": 20, "exclude_item_ids": seen[:1000], "exclude_purchased": False}
        with_models = _post(c, **body)
        saved, b.placements = b.placements, None
        without = _post(c, **body)
        b.placements = saved
        assert [i["item_id"] for i in with_models["items"]] == [i["item_id"] for i in without["items"]]


def test_the_served_log_names_each_placements_source(artifacts) -> None:
    """A continue list is logged under its placement with channel history; home's repeats too."""
    from tests.helpers import eventually
    from tests.serving.test_events import _records

    with make_client(artifacts, events=True) as c:
        b = _bundle(c)
        u, _ = _shopper(b, lambda t: len(t) >= 3)
        cont = _post(c, user_id=u, placement="continue")
        b.placements.coef["home"][0] = 10.0  # the seen items first on home
        home = _post(c, user_id=u, k=20)
        eventually(lambda: len({r["rec_id"] for r in _records(artifacts, "served")}) == 2)
    served = {r["rec_id"]: r for r in _records(artifacts, "served")}
    logged = served[cont["rec_id"]]
    assert logged["placement"] == "continue" and [i["item_id"] for i in logged["items"]] == \
        [i["item_id"] for i in cont["items"]]
    assert all(i["channels"] == ["history"] for i in logged["items"])
    first = served[home["rec_id"]]["items"][0]
    assert first["channels"] == ["history"] and first["pre_rank"] == 1


def test_the_chances_computed_once_for_every_shopper_equal_each_shoppers_own(c) -> None:
    b = _bundle(c)
    m = b.placements
    for row in range(min(50, len(b.shoppers))):
        np.testing.assert_allclose(b.shoppers.home_chance(row, m), m.scores("home", b.shoppers.touched(row)),
                                   rtol=1e-12)


def test_a_cart_left_since_the_bundle_is_an_open_cart(artifacts) -> None:
    """POST /v1/events: a shopper carts a product and leaves it: `continue` puts it first (an open cart
    is the model's strongest sign) and `cart` without context completes it; bought, it is neither."""
    with make_client(artifacts, events=True) as c:
        b = _bundle(c)
        u, row = _shopper(b, lambda t: len(t) >= 3)
        m = b.placements
        m.coef["continue"] = np.zeros(1 + len(FEATURES))
        m.coef["continue"][3] = 5.0  # open_cart
        touched = set(b.shoppers.touched(row).rows.tolist()) | set(b.shoppers.purchased[row].tolist())
        new = next(r for r in range(b.catalog.n_items) if r not in touched)
        other = int(np.flatnonzero(b.catalog.codes != b.catalog.codes[new])[0])
        m.comp_off = np.zeros(len(m.comp_off), np.int64)
        m.comp_off[new + 1 :] = 1
        m.comp_rows, m.comp_score = np.array([other], np.int64), np.array([1.0], np.float32)
        item = b.catalog.item_ids[new]
        ok = c.post("/v1/events", json={"events": [{"type": "cart", "user_id": u, "item_id": item}]})
        assert ok.status_code == 200 and ok.json()["accepted"] == 1
        assert _post(c, user_id=u, placement="continue")["items"][0]["item_id"] == item
        assert [i["item_id"] for i in _post(c, user_id=u, placement="cart")["items"]] == [b.catalog.item_ids[other]]
        c.post("/v1/events", json={"events": [{"type": "purchase", "user_id": u, "item_id": item, "price": 10.0}]})
        assert item not in [i["item_id"] for i in _post(c, user_id=u, placement="continue")["items"]]
        assert _post(c, user_id=u, placement="cart")["items"] == []
