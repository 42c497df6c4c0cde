"""The storefront and the console in headless Chromium: what a shopper and a merchandiser see."""

import time

import httpx
import numpy as np
import pandas as pd
import pytest

from pipelines.simulate import SimConfig, simulate
from serving.online import online_table
from tests.serving.conftest import READ, READ_TOKEN, TOKEN

CHARTS = {"merch": ["chart-deltas"], "merch/quality": ["chart-headline", "chart-guards"],
          "merch/exposure": ["chart-tail"], "merch/map": ["chart-map", "chart-confusion"],
          "merch/online": ["chart-daily-ctr", "chart-daily-revenue", "chart-channels", "chart-positions"]}


def until(check, timeout: float = 10.0) -> None:
    """Poll ``check`` from here (the pages' policy forbids the string evaluation wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


def _grid(page) -> list[str]:
    return page.eval_on_selector_all("#grid .product", "els => els.map(e => e.dataset.item)")


def test_storefront_click_changes_the_recommendations(watched, server):
    base, _ = server
    p = watched.page
    p.goto(base + "/")
    p.wait_for_selector("#grid .product")
    first = _grid(p)
    assert len(first) == 24 and p.inner_text("#grid-title") == "Popular now"
    p.click("#grid .product >> nth=3")
    until(lambda: p.inner_text("#grid-title") == "Recommended for you")
    p.wait_for_selector("#similar-behaviour .product")
    p.wait_for_selector("#similar-image .product")
    after = _grid(p)
    assert after != first and first[3] in p.inner_text("#session-line")
    p.select_option("#category", index=1)
    chosen = p.eval_on_selector("#category", "e => e.value")
    until(lambda: all(t.startswith(chosen) for t in p.eval_on_selector_all("#grid .product div",
                                                                           "els => els.map(d => d.textContent)")))
    watched.shot("storefront")
    watched.clean()


def test_storefront_upload_returns_a_category(watched, server, tiny_shop):
    base, app = server
    p = watched.page
    p.goto(base + "/")
    photo = tiny_shop / pd.read_parquet(tiny_shop / "items.parquet")["image"].dropna().iloc[0]
    p.set_input_files("#photo", str(photo))
    p.wait_for_selector("#photo-category")
    assert p.inner_text("#photo-category").split(" (")[0] in app.state.service.bundle.image_model.class_names
    assert p.locator("#photo-result .product").count() == 8
    watched.shot("storefront-photo")
    watched.clean()


@pytest.mark.parametrize("path", ["merch", "merch/online", "merch/quality", "merch/exposure", "merch/photos",
                                  "merch/preview", "merch/rules", "merch/map"])
def test_console_pages_render_their_charts(watched, server, path, tmp_path, tiny_shop):
    base, app = server
    if path in ("merch", "merch/quality"):  # two nights on record, so the charts have something to draw
        runs = app.state.service.settings.artifacts_dir / "runs"
        runs.mkdir(exist_ok=True)
        for i, nd in enumerate((0.10, 0.12)):
            (runs / f"2026010{i + 1}T000000Z.json").write_text(pd.Series({
                "status": "published", "version": f"v{i}", "headline": {"ranker_ndcg@10": nd, "image_accuracy": 0.9},
                "guards": {"coverage": 0.3, "gini": 0.6, "novelty": 9.0},
                "live_headline": {"ranker_ndcg@10": 0.10, "image_accuracy": 0.9}}).to_json())
    if path == "merch/online":  # shoppers who saw lists and acted on them (pipelines/simulate.py)
        root = app.state.service.events_root
        shown = lambda: int(online_table(root, by=()).impressions.sum())  # noqa: E731  (the pages' lists too)
        before = shown()
        r = simulate(base, tiny_shop, SimConfig(sessions=120, seed=1, k=8, max_attraction=0.9, half=1.0))
        assert r.sessions == 120
        until(lambda: shown() >= before + 8 * 120)  # the served log caught up
        app.state.service.online_cache = None
    p = watched.page
    watched.login(base, READ_TOKEN)
    p.goto(f"{base}/{path}")
    if path == "merch/online":
        assert p.inner_text("#totals .big") == f"{shown():,}"
        assert p.locator("#rules tr").count() >= 2 and p.locator("#daily tr").count() >= 4
    for chart in CHARTS.get(path, []):
        p.wait_for_selector(f"#{chart} .main-svg")
    if path == "merch/photos":
        p.wait_for_selector("figure.photo img")
        assert p.eval_on_selector("figure.photo img", "i => i.complete && i.naturalWidth > 0")
    if path in ("merch/preview", "merch/rules"):
        p.wait_for_selector("#page-without li")
    watched.shot(path.replace("/", "-"))
    watched.clean()


def test_a_pinned_product_is_in_its_slot_in_the_preview_and_the_api(watched, server):
    base, app = server
    p = watched.page
    watched.login(base, TOKEN)  # the admin role: saving a rule is a write
    p.goto(base + "/merch/rules")
    user = p.eval_on_selector("#shopper", "e => e.options[1].value")
    p.select_option("#shopper", user)
    p.click("#preview-btn")
    p.wait_for_selector("#page-without li")
    shown = p.eval_on_selector_all("#page-without li", "els => els.map(e => e.dataset.item)")
    target = shown[-1]
    p.fill("#rule-form [name=item_id]", target)
    p.select_option("#rule-form [name=action]", "pin")
    p.fill("#rule-form [name=slot]", "2")
    p.click("#preview-btn")
    until(lambda: p.get_attribute("#page-with li:nth-child(2)", "data-item") == target)
    assert "pinned" in p.get_attribute("#page-with li:nth-child(2)", "class")
    assert httpx.get(base + "/v1/merch/rules", headers=READ).json()["rules"] == []  # previewed, not saved
    p.click("#save-btn")
    p.wait_for_selector("#rules tr[data-rule]")
    watched.shot("merch-rules-saved")
    api = httpx.post(base + "/v1/recommendations", json={"user_id": user, "k": 10}).json()["items"]
    assert api[1]["item_id"] == target
    rid = p.get_attribute("#rules tr[data-rule]", "data-rule")
    p.click("#rules tr[data-rule] .delete-rule")
    until(lambda: p.locator("#rules tr[data-rule]").count() == 0)
    assert all(r["rule_id"] != rid for r in httpx.get(base + "/v1/merch/rules", headers=READ).json()["rules"])
    watched.clean()


def test_accepting_a_photo_relabels_the_product(watched, server):
    base, app = server
    b = app.state.service.bundle
    p = watched.page
    watched.login(base, TOKEN)  # the admin role: a label decision is a write
    p.goto(base + "/merch/photos")
    fig = p.wait_for_selector("figure.photo")
    item, predicted = fig.get_attribute("data-item"), fig.get_attribute("data-predicted")
    p.click("figure.photo .accept")
    p.wait_for_selector("figure.photo.decided")
    assert p.inner_text("figure.photo .result") == f"now {predicted}"
    now = b.catalog.category_of(b.catalog.row_of.get(item))
    assert httpx.get(f"{base}/v1/items/{item}").json()["category"] == predicted == now
    watched.clean()


def test_the_experiments_page_shows_the_analysis_and_stops_one(watched, server, tiny_shop):
    """An A/B test on the home page, simulated shoppers, the page a merchandiser reads: each variant's
    numbers, the challenger's lift and decision, the chart of the looks; then the stop button."""
    base, app = server
    hostile = '<img src=x onerror="document.title=1">'  # a name is data: rendered as text
    r = httpx.post(base + "/v1/experiments", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "name": hostile, "placements": ["home"],
        "variants": [{"name": "control", "share": 0.5}, {"name": "popular", "share": 0.5, "popularity": True}]})
    assert r.status_code == 201, r.text
    exp = r.json()["experiment_id"]
    time.sleep(1.2)  # every worker follows the experiments log within a second
    sim = simulate(base, tiny_shop, SimConfig(sessions=200, seed=4, k=8, max_attraction=0.9, half=1.0,
                                              arms=(1.0, 0.0, 0.0)))
    assert set(sim.variants) == {f"{exp}:control", f"{exp}:popular"}
    got = lambda: httpx.get(f"{base}/v1/experiments/{exp}/analysis", headers=READ).json()  # noqa: E731
    until(lambda: sum(v["lists"] for v in got()["variants"]) == 200)  # the served log caught up
    p = watched.page
    watched.login(base, TOKEN)
    p.goto(f"{base}/merch/experiments")
    section = p.locator(f"section.experiment[data-id='{exp}']")
    assert section.locator("h2").inner_text().startswith(hostile) and p.title() != "1"
    rows = section.locator("table.variants tr")
    assert rows.count() == 3 and "popular items to everyone" in rows.nth(2).inner_text()
    shoppers = [int(rows.nth(i).locator("td").nth(3).inner_text().replace(",", "")) for i in (1, 2)]
    assert shoppers == [v["shoppers"] for v in got()["variants"]]
    assert section.locator("table.comparisons td.decision").inner_text() == got()["comparisons"][0]["decision"]
    p.wait_for_selector(f"section.experiment[data-id='{exp}'] .chart .main-svg")
    assert "Split check" in section.locator("p.srm").inner_text()
    watched.shot("merch-experiments")
    section.locator("button.stop").click()
    p.wait_for_selector(f"section.experiment[data-id='{exp}'] .status.stopped")
    assert httpx.get(f"{base}/v1/experiments/{exp}", headers=READ).json()["experiment"]["status"] == "stopped"
    watched.clean()


def _items(page, sel: str) -> list[str]:
    return page.eval_on_selector_all(f"{sel} .product", "els => els.map(e => e.dataset.item)")


def _api(base: str, **body) -> list[str]:
    r = httpx.post(base + "/v1/recommendations", json={"k": 8} | body, headers=READ)
    assert r.status_code == 200, r.text
    return [i["item_id"] for i in r.json()["items"]]


def _complements(b, cart: int, other: int) -> tuple:
    """The bundle's complements as if ``other`` were bought with ``cart`` (the tiny shop has few baskets)."""
    m = b.placements
    saved = (m.comp_off, m.comp_rows, m.comp_score)
    off = np.zeros(len(m.comp_off), np.int64)
    off[cart + 1 :] = 1
    m.comp_off, m.comp_rows, m.comp_score = off, np.array([other], np.int64), np.array([1.0], np.float32)
    return saved


def test_the_storefront_shows_every_placement(watched, server):
    """continue, buy-again, cart (after "add to cart"), product (the detail) and home, each what the API serves."""
    base, app = server
    b = app.state.service.bundle
    p = watched.page
    p.goto(base + "/")
    user = p.eval_on_selector("#shopper", "e => e.options[1].value")
    t = b.shoppers.touched(b.shoppers.row_of[user])
    bought = t.rows[np.isfinite(t.buy_age)]
    assert len(bought), "the first demo shopper bought nothing"
    saved_iv = b.placements.interval.copy()
    b.placements.interval[bought[0]] = 10.0  # re-bought at an interval: buy it again
    try:
        p.select_option("#shopper", user)
        p.wait_for_selector("#continue .product")
        p.wait_for_selector("#buy-again .product")
        assert _items(p, "#continue") == _api(base, placement="continue", user_id=user)
        assert _items(p, "#buy-again") == _api(base, placement="buy-again", user_id=user) == \
            [b.catalog.item_ids[bought[0]]]
        until(lambda: _grid(p) == _api(base, placement="home", user_id=user, k=24))
        assert p.is_hidden("#cart-box")
        p.click("#grid .product >> nth=0")
        opened = _grid(p)[0]
        p.wait_for_selector("#similar-behaviour .product")
        assert _items(p, "#similar-behaviour") == _api(base, placement="product", context_item_ids=[opened])
        row = int(b.catalog.rows([opened])[0])
        other = int(np.flatnonzero(b.catalog.codes != b.catalog.codes[row])[0])
        saved = _complements(b, row, other)
        try:
            p.click("#add-to-cart")
            p.wait_for_selector("#cart .product")
            assert opened in p.inner_text("#cart-line")
            assert _items(p, "#cart") == [b.catalog.item_ids[other]]
            watched.shot("storefront-placements")
        finally:
            b.placements.comp_off, b.placements.comp_rows, b.placements.comp_score = saved
    finally:
        b.placements.interval[:] = saved_iv
    watched.clean()


def test_the_console_preview_shows_each_placement(watched, server):
    base, app = server
    b = app.state.service.bundle
    p = watched.page
    watched.login(base, READ_TOKEN)
    p.goto(base + "/merch/preview")
    user = p.eval_on_selector("#shopper", "e => e.options[1].value")
    p.select_option("#shopper", user)
    shown = lambda: p.eval_on_selector_all("#page-without li", "els => els.map(e => e.dataset.item)")  # noqa: E731
    for placement in ("continue", "home"):
        p.select_option("#placement", placement)
        p.click("#preview-btn")
        want = _api(base, placement=placement, user_id=user, k=10, in_stock_only=True)
        until(lambda: shown() == want)  # noqa: B023
    assert "history" in p.inner_text("#page-without")  # continue's and home's repeats say where they come from
    p.check("#discovery-only")
    p.click("#preview-btn")
    want = _api(base, placement="home", user_id=user, k=10, in_stock_only=True, discovery_only=True)
    until(lambda: shown() == want)
    seen = {b.catalog.item_ids[r] for r in b.shoppers.touched(b.shoppers.row_of[user]).rows.tolist()}
    assert not set(shown()) & seen
    p.uncheck("#discovery-only")
    item = b.catalog.item_ids[5]
    p.select_option("#placement", "product")
    p.fill("#context", item)
    p.click("#preview-btn")
    want = _api(base, placement="product", user_id=user, context_item_ids=[item], k=10, in_stock_only=True)
    until(lambda: shown() == want)
    assert item not in shown()
    watched.shot("merch-preview-placements")
    watched.clean()
