"""Two service processes (here: two apps) on one artifacts directory converge on admin changes."""

from pathlib import Path

from tests.helpers import eventually
from tests.serving.conftest import TOKEN, make_client

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_change_made_through_one_worker_reaches_the_other(artifacts: Path) -> None:
    with make_client(artifacts, changes_poll_s=0.1) as a, make_client(artifacts, changes_poll_s=0.1) as b:
        served = a.post("/v1/recommendations", json={"k": 5, "in_stock_only": False}).json()["items"]
        victim, other = served[0]["item_id"], served[1]["item_id"]
        assert a.delete(f"/v1/items/{victim}", headers=AUTH).status_code == 200
        assert a.patch(f"/v1/items/{other}", headers=AUTH, json={"price": 123.5}).status_code == 200

        def b_has_both() -> bool:
            page = b.post("/v1/recommendations", json={"k": 50, "in_stock_only": False}).json()["items"]
            return (victim not in {i["item_id"] for i in page}
                    and b.get(f"/v1/items/{other}").json()["price"] == 123.5)

        assert eventually(b_has_both, what="the other worker did not converge in time") < 1.0  # a few polls of 0.1 s
        # and a's own change, read back from the log, is not applied twice
        assert a.get(f"/v1/items/{other}").json()["price"] == 123.5
        # both read the whole log within a poll (a reads its own two changes back on its next poll)
        eventually(lambda: a.app.state.service.bundle.changes_offset == b.app.state.service.bundle.changes_offset,
                   what="the other worker did not converge in time")
        assert a.get(f"/v1/items/{other}").json()["price"] == 123.5
