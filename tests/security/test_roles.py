"""Personal data behind a token, the console's session, and what the public sees (issue 28, findings 2,
4 and 9; docs/security.md). Each of these answered 200 to anyone before."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serving.auth import COOKIE, cookie_role, session_cookie
from serving.settings import ServingSettings
from tests.serving.conftest import AUTH, READ, READ_TOKEN, TOKEN, make_client

PERSONAL = ["/v1/merch/shoppers", "/v1/merch/rules", "/v1/analytics/exposure?shoppers=10&k=3",
            "/v1/analytics/photos?shoppers=10", "/v1/analytics/tonight", "/v1/analytics/online",
            "/v1/analytics/quality",
            "/v1/analytics/confusion", "/v1/analytics/catalog-map?n=10", "/metrics"]
PAGES = ["/merch", "/merch/online", "/merch/quality", "/merch/exposure", "/merch/photos", "/merch/preview",
         "/merch/rules", "/merch/map"]


@pytest.fixture(scope="module")
def c(tiny_artifacts: Path):
    with make_client(tiny_artifacts) as client:
        yield client


def _shopper(c) -> str:
    return c.get("/v1/merch/shoppers", params={"limit": 1}, headers=READ).json()["user_ids"][0]


def test_personal_data_and_analytics_need_the_read_role(c) -> None:
    user = _shopper(c)
    for path in [*PERSONAL, f"/v1/merch/shoppers/{user}"]:
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": "Bearer not-a-token-at-all"}).status_code == 401, path
        assert c.get(path, headers=READ).status_code == 200, path
        assert c.get(path, headers=AUTH).status_code == 200, path  # the admin role may read too
    preview = {"request": {"user_id": user, "k": 3}}
    assert c.post("/v1/merch/preview", json=preview).status_code == 401
    assert c.post("/v1/merch/preview", json=preview, headers=READ).status_code == 200


def test_the_read_role_cannot_write(c) -> None:
    rule = {"action": "exclude", "category": c.app.state.service.bundle.catalog.category_names[0]}
    r = c.post("/v1/merch/rules", json=rule, headers=READ)
    assert r.status_code == 403 and "admin role" in r.json()["detail"]
    assert c.post("/admin/reload", headers=READ).status_code == 403


def test_explanations_for_a_known_shopper_need_the_read_role(c) -> None:
    user = _shopper(c)
    body = {"user_id": user, "k": 5, "explain": True}
    assert c.post("/v1/recommendations", json=body).status_code == 401  # because_of names history items
    got = c.post("/v1/recommendations", json=body, headers=READ)
    assert got.status_code == 200 and all(i["reason"] for i in got.json()["items"])
    anon = c.post("/v1/recommendations", json={"k": 5, "explain": True, "recent_item_ids": []})
    assert anon.status_code == 200  # an anonymous session's reasons are its own clicks
    assert c.post("/v1/recommendations", json={"user_id": user, "k": 5}).status_code == 200  # no reasons: public


def test_the_storefront_page_lists_no_shoppers_unless_the_demo_switch_says_so(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts) as c:
        users = list(c.app.state.service.bundle.shoppers.row_of)
        page = c.get("/").text
        assert not any(f"<option>{u}</option>" in page for u in users[:50])
    with make_client(tiny_artifacts, demo_shoppers=True) as c:
        assert "<option>" in c.get("/").text.split('id="shopper"')[1].split("</select>")[0]


def test_console_pages_redirect_to_the_login_and_the_login_sets_an_httponly_cookie(c) -> None:
    for path in PAGES:
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/merch/login?next="), path
    assert c.get("/merch/login").status_code == 200
    bad = c.post("/merch/login", data={"token": "wrong", "next": "/merch/rules"}, follow_redirects=False)
    assert bad.status_code == 401 and COOKIE not in bad.cookies
    ok = c.post("/merch/login", data={"token": READ_TOKEN, "next": "/merch/rules"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/merch/rules"
    set_cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and READ_TOKEN.lower() not in set_cookie
    c.cookies.set(COOKIE, ok.cookies[COOKIE])
    try:
        for path in PAGES:
            assert c.get(path).status_code == 200, path
        assert c.get("/v1/analytics/tonight").status_code == 200  # the console's JSON with the same cookie
    finally:
        c.cookies.clear()


def test_the_login_never_redirects_off_the_console(c) -> None:
    for evil in ("https://evil.example/", "//evil.example/merch", "/merch//evil", "/v1/items"):
        r = c.post("/merch/login", data={"token": READ_TOKEN, "next": evil}, follow_redirects=False)
        assert r.headers["location"] == "/merch", evil


def test_cookie_writes_need_the_console_header_and_forged_cookies_are_nobody(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts) as c:
        settings = c.app.state.service.settings
        c.cookies.set(COOKIE, session_cookie(settings, "admin"))
        rule = {"action": "exclude", "category": c.app.state.service.bundle.catalog.category_names[0],
                "rule_id": "csrf"}
        r = c.post("/v1/merch/rules", json=rule)  # a form on another site could send this: refused
        assert r.status_code == 403 and "X-Vitrine-Console" in r.json()["detail"]
        assert c.post("/v1/merch/rules", json=rule, headers={"X-Vitrine-Console": "1"}).status_code == 201
        assert c.delete("/v1/merch/rules/csrf", headers={"X-Vitrine-Console": "1"}).status_code == 200
        role, expiry, sig = session_cookie(settings, "read").split(".")
        for forged in (f"admin.{expiry}.{sig}", f"read.{int(expiry) + 999}.{sig}", f"read.{expiry}.{'0' * 64}",
                       "admin", "admin.1.2.3", session_cookie(ServingSettings(admin_token="x" * 16), "admin")):
            c.cookies.set(COOKIE, forged)
            assert c.get("/v1/analytics/tonight").status_code == 401, forged
        c.cookies.clear()


def test_a_session_expires_and_logout_clears_it() -> None:
    s = ServingSettings(read_token=READ_TOKEN, admin_token=TOKEN, session_ttl_s=60)
    value = session_cookie(s, "read", now=time.time() - 61)
    assert cookie_role(s, value) == "public" and cookie_role(s, session_cookie(s, "read")) == "read"
    rotated = ServingSettings(read_token="another-read-token-00", admin_token=TOKEN)
    assert cookie_role(rotated, session_cookie(s, "admin")) == "public"  # a new token ends every session


def test_the_public_readiness_answer_names_no_local_path(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:  # no bundle: the error names the artifacts folder
        public, full = c.get("/readyz").json()["status"], c.get("/readyz", headers=READ).json()["status"]
        assert str(tmp_path) in full and str(tmp_path) not in public and "no current bundle" in public


def test_docs_and_metrics_are_closed_by_default(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
        assert c.get("/metrics").status_code == 401 and c.get("/metrics", headers=READ).status_code == 200


def test_no_token_configured_disables_the_read_routes(tiny_artifacts: Path) -> None:
    with make_client(tiny_artifacts, admin_token=None, read_token=None) as c:
        r = c.get("/v1/merch/shoppers")
        assert r.status_code == 403 and "disabled" in r.json()["detail"]
