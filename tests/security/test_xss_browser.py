"""The console cannot be turned against its merchandisers (issue 28, finding 1), in the real browser:
a product id built to break out of an attribute renders as text on every page that lists products,
no planted script runs, and page script cannot read the session (an HttpOnly cookie; nothing in
local or session storage). Before: the id ran ``onerror`` on opening /merch/preview and read the
admin token from localStorage."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from serving.app import create_app
from serving.auth import COOKIE
from serving.catalog_columns import RowIndex
from serving.settings import ServingSettings
from tests.browser.conftest import Watched, browser  # noqa: F401  (the Playwright fixture)
from tests.reliability.server import serve_in_thread
from tests.serving.conftest import AUTH, READ, TOKEN

PAYLOAD = 'x" onerror="window.__xss=document.cookie||1" y="'
TAG = "<img src=nowhere onerror=window.__xss=2>"


@pytest.fixture(scope="module")
def hostile(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real server over a bundle whose two most popular products carry hostile ids."""
    art = tmp_path_factory.mktemp("xss") / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    app = create_app(ServingSettings(artifacts_dir=art, admin_token=TOKEN, read_token=READ["Authorization"][7:],
                                     candidates=50, demo_shoppers=True))
    with serve_in_thread(app) as base:
        b = app.state.service.bundle
        first, second = [int(r) for r in b.popular if b.catalog.in_stock[r]][:2]  # shown on the default pages
        b.catalog.item_ids[first] = PAYLOAD
        b.catalog.item_ids[second] = TAG
        b.catalog.titles[second] = TAG
        b.catalog.row_of = RowIndex(b.catalog.item_ids)
        httpx.post(base + "/v1/merch/rules", headers=AUTH, json={"action": "pin", "item_id": PAYLOAD, "slot": 1})
        yield base


def _untouched(w: Watched) -> None:
    p = w.page
    assert p.evaluate("window.__xss") is None  # no planted handler ran
    assert COOKIE not in p.evaluate("document.cookie")  # HttpOnly: the session is not page script's
    assert p.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0 or \
        p.evaluate("Object.keys(sessionStorage)") == ["vitrine-session"]  # the storefront's own clicks only
    assert "token" not in p.evaluate("JSON.stringify({...localStorage, ...sessionStorage})").lower()


def test_a_hostile_id_renders_as_text_in_the_preview_and_cannot_reach_the_session(browser, hostile):  # noqa: F811
    w = Watched(browser, hostile)
    p = w.page
    w.login(hostile, TOKEN)
    p.goto(hostile + "/merch/preview")
    p.wait_for_selector("#page-with li")
    shown = p.eval_on_selector_all("#page-with li b", "els => els.map(e => e.textContent)")
    assert PAYLOAD in shown  # the pinned product, its id as text
    assert p.eval_on_selector_all("#page-with li img", "els => els.map(e => e.getAttribute('onerror'))") == \
        [None] * len(shown)
    user = p.eval_on_selector("#shopper", "e => e.options[1].value")
    p.select_option("#shopper", user)
    p.click("#preview-btn")
    p.wait_for_selector("#history li")
    _untouched(w)
    w.shot("xss-preview")
    w.page.close()


@pytest.mark.parametrize("path", ["/", "/merch/rules", "/merch/exposure"])
def test_a_hostile_id_renders_as_text_on_the_other_pages(browser, hostile, path: str):  # noqa: F811
    w = Watched(browser, hostile)
    p = w.page
    w.login(hostile, READ["Authorization"][7:])
    p.goto(hostile + path)
    if path == "/":
        p.wait_for_selector("#grid .product")
        titles = p.eval_on_selector_all("#grid .product b", "els => els.map(e => e.textContent)")
        assert TAG in titles  # the title as text, not an element
        assert p.locator("#grid img[src='nowhere']").count() == 0
    else:
        assert PAYLOAD in p.inner_text("main") or TAG in p.inner_text("main") or path == "/merch/exposure"
    p.wait_for_timeout(300)  # give any planted handler its chance
    _untouched(w)
    w.page.close()
