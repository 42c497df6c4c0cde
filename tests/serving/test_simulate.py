"""The shopper simulator against the real server (pipelines/simulate.py): what the shoppers did, as
the simulator counted it, is what the service's online metrics attribute; the console's Online page,
Tonight's card and the exposure page read the same logs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pipelines.simulate import ARMS, SimConfig, simulate
from serving.app import create_app
from serving.online import online_table
from serving.settings import ServingSettings
from tests.reliability.server import serve_in_thread
from tests.serving.conftest import READ, READ_TOKEN, TOKEN


@pytest.fixture
def simulated(artifacts: Path, tiny_shop: Path):
    app = create_app(ServingSettings(artifacts_dir=artifacts, admin_token=TOKEN, read_token=READ_TOKEN, candidates=50,
                                     events_segment_age_s=1.0, events_grace_s=0.2))
    with serve_in_thread(app) as base:
        r = simulate(base, tiny_shop, SimConfig(sessions=300, seed=3, k=8, concurrency=4,
                                                max_attraction=0.9, half=1.0))
        yield base, app, r


def _settled(app, r) -> dict:
    """The per-placement table once the background writers have caught up with the simulator."""
    root = app.state.service.events_root
    deadline = time.monotonic() + 10
    while True:
        t = online_table(root, by=("placement",)).set_index("placement")
        if sum(t["impressions"]) == 8 * r.sessions and sum(t["clicks"]) == sum(r.clicks.values()) \
                or time.monotonic() > deadline:
            return t
        time.sleep(0.1)


def test_the_service_credits_exactly_what_the_shoppers_did(simulated) -> None:
    _, app, r = simulated
    assert r.sessions == 300 and r.failed == 0 and r.rejected == 0
    assert sum(r.clicks.values()) > 20 and sum(r.purchases.values()) > 0  # the tastes make shoppers act
    t = _settled(app, r)
    for arm in [x for x in ARMS if r.lists[x]]:
        assert t.loc[arm].impressions == 8 * r.lists[arm]
        assert (t.loc[arm].clicks, t.loc[arm].carts, t.loc[arm].purchases) == (
            r.clicks[arm], r.carts[arm], r.purchases[arm])
        assert t.loc[arm].revenue == pytest.approx(r.revenue[arm])


def test_the_simulator_is_deterministic_by_seed(tiny_shop: Path) -> None:
    """Two runs with one seed against a fixed page draw the same shoppers, arms and clicks."""
    import pipelines.simulate as sim

    truth = sim.Truth(tiny_shop)
    page = {"items": [{"item_id": i} for i in list(truth.item)[:8]], "rec_id": "r.x"}
    transport = httpx.MockTransport(lambda req: httpx.Response(200, json=page))
    with httpx.Client(transport=transport, base_url="http://sim") as c:
        runs = [[sim._session(c, truth, SimConfig(seed=5, k=8), i, 1.7e9) for i in range(50)] for _ in range(2)]
    assert runs[0] == runs[1]
    with httpx.Client(transport=transport, base_url="http://sim") as c:
        other = [sim._session(c, truth, SimConfig(seed=6, k=8), i, 1.7e9) for i in range(50)]
    assert other != runs[0]


def test_the_console_shows_what_was_earned(simulated) -> None:
    base, app, r = simulated
    _settled(app, r)
    online = httpx.get(f"{base}/v1/analytics/online", headers=READ).json()
    assert online["logged"] and online["totals"]["clicks"] == sum(r.clicks.values())
    assert {d["placement"] for d in online["daily"]} == {a for a in ARMS if r.lists[a]}
    assert {c["channel"] for c in online["channels"]} >= {"tower"}
    assert [p["position"] for p in online["positions"]] == list(range(1, 9))
    assert httpx.get(f"{base}/v1/analytics/online").status_code == 401  # the read role
    tonight = httpx.get(f"{base}/v1/analytics/tonight", headers=READ).json()
    assert tonight["online"]["impressions"] == 8 * r.sessions
    exposure = httpx.get(f"{base}/v1/analytics/exposure", headers=READ).json()
    assert exposure["source"] == "served" and exposure["shoppers"] == r.sessions
