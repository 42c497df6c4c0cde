"""Live changes are logged before they are applied, and a torn log line loses nothing after it."""

import errno
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.live import ChangeLog
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_torn_last_line_does_not_swallow_the_next_change(tmp_path: Path) -> None:
    log = ChangeLog(tmp_path, "v1")
    log.append({"op": "hide", "item_id": "a"})
    with log.path.open("a") as f:
        f.write('{"op": "patch", "item_id": "b", "pri')  # a crash mid-write
    log.append({"op": "hide", "item_id": "c"})
    assert [e["item_id"] for e in log.entries()] == ["a", "c"]


def test_a_change_that_cannot_be_logged_is_not_applied(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(artifacts_dir=artifacts, admin_token=TOKEN)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        iid = str(c.app.state.service.bundle.catalog.item_ids[0])
        before = c.get(f"/v1/items/{iid}").json()

        def disk_full(self, change: dict) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(ChangeLog, "append", disk_full)
        r = c.patch(f"/v1/items/{iid}", headers=AUTH, json={"price": before["price"] + 5, "in_stock": False})
        assert r.status_code == 500 and "request_id" in r.text
        assert c.delete(f"/v1/items/{iid}", headers=AUTH).status_code == 500
        after = c.get(f"/v1/items/{iid}").json()
        assert (after["price"], after["in_stock"]) == (before["price"], before["in_stock"])
        monkeypatch.undo()
        assert c.patch(f"/v1/items/{iid}", headers=AUTH, json={"in_stock": False}).json()["in_stock"] is False
