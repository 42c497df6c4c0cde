"""The shared state's logs (common/state_logs.py): the same contract on files and on a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.state_logs import START, FileLogs, RedisLogs, StateUnavailableError, open_state
from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture(params=["files", "redis"])
def logs(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "files":
        return FileLogs(tmp_path / "artifacts")
    return RedisLogs(request.getfixturevalue("redis_server").url)


def test_a_reader_gets_each_record_once_in_order(logs) -> None:
    assert logs.read_from("merch/rules") == ([], START)
    for i in range(3):
        logs.append("merch/rules", {"i": i})
    got, cursor = logs.read_from("merch/rules")
    assert [r["i"] for r in got] == [0, 1, 2]
    assert logs.read_from("merch/rules", cursor)[0] == []  # nothing twice
    logs.append_many("merch/rules", [{"i": 3}, {"i": 4}])
    more, cursor2 = logs.read_from("merch/rules", cursor)
    assert [r["i"] for r in more] == [3, 4] and cursor2 != cursor
    assert [r["i"] for r in logs.read_from("live/v1/changes")[0]] == []  # logs are separate


@pytest.mark.parametrize("name", ["../x", "a/../b", "/abs", "a//b", "a b", ""])
def test_a_log_name_never_becomes_a_path_outside(logs, name: str) -> None:
    with pytest.raises(ValueError, match="bad state log name"):
        logs.append(name, {"x": 1})


def test_a_long_absence_is_read_in_pages(redis_server: RedisServer) -> None:
    logs = RedisLogs(redis_server.url)
    logs.append_many("events/recent", [{"i": i} for i in range(2500)])
    got, _ = logs.read_from("events/recent")
    assert [r["i"] for r in got] == list(range(2500))
    logs.append_many("events/recent", [{"i": -1}] * 50, maxlen=100)  # trimmed to about the last 100
    assert 100 <= len(logs.read_from("events/recent")[0]) < 2550


def test_redis_down_refuses_writes_and_a_restart_loses_nothing_acknowledged(redis_server: RedisServer) -> None:
    logs = RedisLogs(redis_server.url, timeout_s=0.5)
    logs.append("merch/labels", {"item_id": "a"})
    _, cursor = logs.read_from("merch/labels")
    logs.append("merch/labels", {"item_id": "b"})  # acknowledged, not yet read
    logs.put_blob("live/v1/images/x.png", b"png")
    redis_server.kill()
    with pytest.raises(StateUnavailableError):
        logs.append("merch/labels", {"item_id": "c"})
    with pytest.raises(StateUnavailableError):
        logs.read_from("merch/labels", cursor)
    assert "unreachable" in logs.problem() and "127.0.0.1" in logs.problem()
    redis_server.start()
    got, _ = logs.read_from("merch/labels", cursor)  # reconnects; the cursor picks up where it was
    assert [r["item_id"] for r in got] == ["b"] and logs.problem() is None
    assert logs.get_blob("live/v1/images/x.png") == b"png"


def test_only_a_redis_url_is_a_store(tmp_path: Path) -> None:
    assert isinstance(open_state(None, tmp_path), FileLogs)
    with pytest.raises(ValueError, match="redis://"):
        open_state("http://example.com", tmp_path)
    assert "secret" not in RedisLogs("redis://user:secret@127.0.0.1:1/0").where()


def test_the_nightly_job_reads_label_decisions_from_the_same_store(redis_server: RedisServer, tmp_path: Path) -> None:
    """pipelines/label_fixes.py reads what the console decided, wherever the service keeps it."""
    from bundle.labels import LABELS, label_decisions

    RedisLogs(redis_server.url).append_many(LABELS, [{"item_id": "a", "decision": "accept", "category": "Bag"},
                                                     {"item_id": "a", "decision": "dismiss", "category": None},
                                                     {"item_id": "b", "decision": "accept", "category": "Coat"}])
    got = label_decisions(tmp_path, redis_server.url)
    assert {i: d["decision"] for i, d in got.items()} == {"a": "dismiss", "b": "accept"}
    assert label_decisions(tmp_path) == {}  # the files hold nothing: the store was read, not the disk
