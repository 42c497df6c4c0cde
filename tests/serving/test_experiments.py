"""Experiments through the service (serving/experiments.py, serving/routers/experiments.py): the
admin API's contract, sticky hashed assignment logged with every served list, variants that change
what is served, interleaved pages, guardrails, and the analysis read back from the logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundle.versions import bundles_dir
from serving.experiments import Experiment, Guard, Variant
from tests.helpers import eventually
from tests.serving.conftest import AUTH, READ, make_client

POPULAR = {"name": "popular", "share": 0.5, "popularity": True}


def _start(c, **kw) -> dict:
    body = {"name": "t", "placements": ["home"], "variants": [{"name": "control", "share": 0.5}, POPULAR]} | kw
    r = c.post("/v1/experiments", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()


def _users(c, n: int) -> list[str]:
    return c.get("/v1/merch/shoppers", params={"limit": n}, headers=READ).json()["user_ids"]


def _page(c, user: str, placement: str = "home") -> dict:
    r = c.post("/v1/recommendations", json={"user_id": user, "k": 8, "placement": placement})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_api_refuses_what_it_cannot_run(artifacts: Path) -> None:
    with make_client(artifacts) as c:
        body = {"name": "t", "placements": ["home"], "variants": [{"name": "a", "share": 0.5}, POPULAR]}
        assert c.post("/v1/experiments", json=body).status_code in (401, 403)  # admin only
        assert c.post("/v1/experiments", json=body, headers=READ).status_code in (401, 403)
        bad = [({**body, "variants": [{"name": "a", "share": 0.5}, {**POPULAR, "share": 0.6}]}, "sum to 1.1"),
               ({**body, "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "bundle": "nope"}]},
                "no bundle 'nope'"),
               ({**body, "placements": ["../x"]}, "placement"),
               ({**body, "mode": "interleave", "variants": [{"name": "a", "share": 0.4}, {"name": "b", "share": 0.3},
                                                            {"name": "c", "share": 0.3}]}, "exactly two")]
        for b, why in bad:
            r = c.post("/v1/experiments", json=b, headers=AUTH)
            assert r.status_code == 422 and why in r.text, (why, r.text)
        first = _start(c)
        r = c.post("/v1/experiments", json={**body, "placements": ["cart", "home"]}, headers=AUTH)
        assert r.status_code == 409 and first["experiment_id"] in r.text
        assert c.get("/v1/experiments").status_code in (401, 403)  # the read role
        listed = c.get("/v1/experiments", headers=READ).json()["experiments"]
        assert [e["experiment_id"] for e in listed] == [first["experiment_id"]] and listed[0]["salt"]
        assert c.get("/v1/experiments/..%2Fx", headers=READ).status_code in (404, 422)
        assert c.get("/v1/experiments/nope", headers=READ).status_code == 404


def test_assignment_is_sticky_by_shares_and_changes_the_page(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        exp = _start(c)
        users = _users(c, 200)
        seen = {}
        for u in users:
            page = _page(c, u)
            seen[u] = page["variant"]
            assert _page(c, u)["variant"] == page["variant"]  # sticky
            assert page["variant"] == Experiment.model_validate(exp).tag(
                Experiment.model_validate(exp).assign(u))  # the documented hash
        assert 0.35 < sum(v.endswith(":popular") for v in seen.values()) / len(seen) < 0.65
        popular = [u for u, v in seen.items() if v.endswith(":popular")][:5]
        pages = {tuple(i["item_id"] for i in _page(c, u)["items"]) for u in popular}
        assert len(pages) == 1  # the popularity variant is not personal
        assert _page(c, users[0], placement="category-page")["variant"] is None  # other placements untouched
        assert c.post("/v1/recommendations", json={"k": 5, "placement": "home"}).json()["variant"] is None  # no key
        served = c.app.state.service.served
        eventually(lambda: not served.queue, what="served lists written")
        r = c.post(f"/v1/experiments/{exp['experiment_id']}/stop", json={"reason": "done"}, headers=AUTH)
        assert r.json()["status"] == "stopped" and r.json()["reason"] == "done"
        assert _page(c, users[0])["variant"] is None


def test_a_bundle_variant_loads_beside_the_live_one(artifacts: Path, tiny_shop: Path, tiny_models) -> None:
    from pipelines.assemble import assemble_bundle

    live = (artifacts / "CURRENT").read_text().strip()
    shutil.copytree(bundles_dir(artifacts) / live, bundles_dir(artifacts) / "20260103T000000Z")  # a forged copy
    assemble_bundle(artifacts, tiny_shop, tiny_models, version="20260102T000000Z")
    with make_client(artifacts) as c:
        state = c.app.state.service
        users = _users(c, 60)
        bad = _start(c, variants=[{"name": "control", "share": 0.5},
                                  {"name": "forged", "share": 0.5, "bundle": "20260103T000000Z"}])
        _page(c, users[0])  # asks for the bundle: refused (its manifest names another version)
        eventually(lambda: "20260103T000000Z" in state.variant_bundles.failed, 30, "forged bundle refused")
        got = c.get(f"/v1/experiments/{bad['experiment_id']}", headers=READ).json()
        assert got["bundles"]["20260103T000000Z"].startswith("refused: ")
        assert {_page(c, u)["variant"] for u in users} == {None}  # never served, nobody tagged
        got = c.get(f"/v1/experiments/{bad['experiment_id']}", headers=READ).json()["experiment"]
        assert got["status"] == "stopped" and "refused bundle 20260103T000000Z" in got["reason"]
        exp = _start(c, variants=[{"name": "control", "share": 0.5},
                                  {"name": "next", "share": 0.5, "bundle": "20260102T000000Z"}])
        _page(c, users[0])
        eventually(lambda: "20260102T000000Z" in state.variant_bundles.bundles, 60, "variant bundle loaded")
        answers = [_page(c, u) for u in users]
        assert {a["variant"].split(":")[1] for a in answers} == {"control", "next"}
        assert {a["bundle_version"] for a in answers} == {live, "20260102T000000Z"}
        got = c.get(f"/v1/experiments/{exp['experiment_id']}", headers=READ).json()
        assert got["bundles"] == {"20260102T000000Z": "loaded"}
        c.post(f"/v1/experiments/{exp['experiment_id']}/stop", json={}, headers=AUTH)
        state.drop_unused_variants()
        assert state.variant_bundles.bundles == {}


def test_interleaving_mixes_both_pages_and_credits_clicks(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        exp = _start(c, mode="interleave")
        users = _users(c, 40)
        events = []
        served = c.app.state.service.served
        for n, u in enumerate(users):
            page = _page(c, u)
            assert page["variant"] == f"{exp['experiment_id']}:interleave"
            eventually(lambda: not served.queue, what="served list written")
            events.append({"event_id": f"e{n}", "type": "click", "user_id": u, "rec_id": page["rec_id"],
                           "item_id": page["items"][0]["item_id"], "position": 1})
        assert c.post("/v1/events", json={"events": events}).json()["accepted"] == len(events)
        a = c.get(f"/v1/experiments/{exp['experiment_id']}/analysis", headers=READ).json()
        p = a["preference"]
        assert p["shoppers"] == len(users) and p["ties"] == 0
        assert p["prefer_control"] + p["prefer_challenger"] == len(users)
        assert 0.2 < p["prefer_challenger"] / len(users) < 0.8  # the top slot goes to either team by a coin


def test_analysis_reads_each_variant_from_the_logs(artifacts: Path) -> None:
    with make_client(artifacts, events=True) as c:
        exp = _start(c)
        events, clicks = [], {"control": 0, "popular": 0}
        users = _users(c, 120)
        for n, u in enumerate(users):
            page = _page(c, u)
            arm = page["variant"].split(":")[1]
            if n % (2 if arm == "control" else 5) == 0:  # the personal pages earn more clicks
                clicks[arm] += 1
                events.append({"event_id": f"e{n}", "type": "click", "user_id": u, "rec_id": page["rec_id"],
                               "item_id": page["items"][1]["item_id"], "position": 2})
        served = c.app.state.service.served
        eventually(lambda: not served.queue, what="served lists written")
        assert c.post("/v1/events", json={"events": events}).json()["accepted"] == len(events)
        a = c.get(f"/v1/experiments/{exp['experiment_id']}/analysis", headers=READ).json()
        v = {x["name"]: x for x in a["variants"]}
        assert v["control"]["clicks"] == clicks["control"] and v["popular"]["clicks"] == clicks["popular"]
        assert v["control"]["impressions"] == 8 * v["control"]["lists"]
        assert v["control"]["shoppers"] + v["popular"]["shoppers"] == len(users)
        [cmp] = a["comparisons"]
        ctr = {k: clicks[k] / v[k]["impressions"] for k in clicks}
        assert cmp["variant"] == "popular"
        assert cmp["lift"]["value"] == pytest.approx(ctr["popular"] / ctr["control"] - 1)
        assert cmp["lift"]["low"] < cmp["lift"]["value"] < cmp["lift"]["high"]
        assert cmp["lift_always_valid"]["low"] < cmp["lift"]["low"]  # valid at every look: wider
        assert a["srm_flagged"] is False


def test_guard_stops_a_failing_challenger_and_rolls_back_a_canary() -> None:
    saved = []
    g = Guard(saved.append, check_every=10)
    exp = Experiment(experiment_id="g", name="g", placements=["home"], salt="s", canary=True,
                     variants=[Variant(name="live", share=0.9), Variant(name="new", share=0.1)])
    exp = exp.model_copy(update={"guardrails": exp.guardrails.model_copy(update={"min_requests": 100})})
    for _ in range(300):
        g.record(exp, exp.variants[0], 5.0, error=True)  # the control's errors never count
    assert saved == []
    for i in range(100):
        g.record(exp, exp.variants[1], 5.0, error=i % 20 == 0)  # 5 % errors > 1 %
    assert saved and saved[0].status == "rolled back" and "5 of 100" in saved[0].reason


@pytest.mark.parametrize("p99,limit,breached", [(50.0, 20.0, True), (10.0, 20.0, False)])
def test_guard_latency(p99: float, limit: float, breached: bool) -> None:
    saved = []
    g = Guard(saved.append, check_every=10)
    exp = Experiment(experiment_id="g", name="g", placements=["home"], salt="s",
                     variants=[Variant(name="live", share=0.5), Variant(name="new", share=0.5)])
    exp = exp.model_copy(update={"guardrails": exp.guardrails.model_copy(update={"min_requests": 100,
                                                                               "max_p99_ms": limit})})
    for i in range(200):
        g.record(exp, exp.variants[1], p99 if i % 50 == 0 else 1.0, error=False)
    assert bool(saved) == breached and (not saved or saved[0].status == "stopped")
