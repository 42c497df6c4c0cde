"""A bundle the service would refuse is never published, and a CURRENT it refuses is not an outage."""

import http.server
import json
import threading
from pathlib import Path

import pytest

from bundle.versions import bundles_dir, current_version, list_bundles, promote, retain, write_bundle
from serving.smoke import check_servable
from tests.serving.conftest import make_client


def _with_bad_ranker(artifacts: Path, version: str, smoke=None) -> Path:
    """A copy of CURRENT whose ranker.onnx is not a model (its checksum is right: verification passes)."""
    src = bundles_dir(artifacts) / current_version(artifacts)
    manifest = json.loads((src / "manifest.json").read_text())
    files = {f: src / f for f in manifest["files"]}
    bad = artifacts.parent / f"bad-ranker-{version}.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    files["ranker.onnx"] = bad
    info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    return write_bundle(artifacts, files, info, version=version, smoke=smoke)


def test_the_publisher_runs_the_services_load_check(artifacts: Path) -> None:
    before = list_bundles(artifacts)
    with pytest.raises(Exception, match="(?i)protobuf|load|parse"):
        _with_bad_ranker(artifacts, "20990101T000000Z", smoke=check_servable)
    assert list_bundles(artifacts) == before  # nothing published, no temporary directory left
    assert not [p for p in bundles_dir(artifacts).iterdir() if p.name.startswith(".tmp-")]


def test_a_refused_current_falls_back_to_the_newest_bundle_that_loads(artifacts: Path) -> None:
    good = current_version(artifacts)
    _with_bad_ranker(artifacts, "20990101T000000Z")
    promote(artifacts, "20990101T000000Z")
    with make_client(artifacts) as c:  # a restart with CURRENT naming a bundle it cannot load
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["bundle_version"] == good and r.json()["status"].startswith("degraded")
        assert "20990101T000000Z" in r.json()["status"]
        r = c.post("/v1/recommendations", json={"k": 3})
        assert r.status_code == 200 and r.json()["bundle_version"] == good


def test_retention_keeps_the_bundle_before_current(tmp_path: Path) -> None:
    art = tmp_path / "art"
    src = tmp_path / "f.txt"
    src.write_text("x")
    for v in ("v1", "v2", "v3", "v4"):
        write_bundle(art, {"f.txt": src}, version=v)
    promote(art, "v3")  # v4 was never promoted (refused by the gate), v3 serves, v2 is the fallback
    assert retain(art, keep=1) == ["v1"]
    assert list_bundles(art) == ["v2", "v3", "v4"]


def test_notify_reload_reports_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.nightly import notify_reload

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = b'{"detail": "bundle v9 refused: InvalidProtobuf"}'
            self.send_response(409)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        out = notify_reload(f"http://127.0.0.1:{srv.server_port}")
    finally:
        srv.shutdown()
    assert out.startswith("refused") and "InvalidProtobuf" in out
    assert notify_reload(None) == "not configured"


def test_no_cuda_provider_serves_on_the_cpu_and_says_so(tiny_artifacts: Path, caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import common.onnx_runtime as rt

    monkeypatch.setattr(rt.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])  # a host without CUDA
    with caplog.at_level(logging.WARNING), make_client(tiny_artifacts, device="cuda") as c:
        assert c.get("/readyz").json()["status"] == "ready"
        assert c.post("/v1/recommendations", json={"k": 3}).status_code == 200
    assert "CUDA requested but ONNX Runtime has no CUDA provider" in caplog.text


def test_a_disk_full_while_publishing_leaves_nothing_half_written(artifacts: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import shutil

    import bundle.versions as sb

    before, current = list_bundles(artifacts), current_version(artifacts)
    src = bundles_dir(artifacts) / current
    files = {f: src / f for f in json.loads((src / "manifest.json").read_text())["files"]}
    copied = []

    def full_after_two(a, b, *args, **kw):
        if len(copied) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        copied.append(b)
        return shutil.copyfile(a, b)

    monkeypatch.setattr(sb.shutil, "copyfile", full_after_two)
    with pytest.raises(OSError, match="No space left"):
        write_bundle(artifacts, files, version="20990202T000000Z")
    monkeypatch.undo()
    assert list_bundles(artifacts) == before and current_version(artifacts) == current
    assert not [p for p in bundles_dir(artifacts).iterdir() if p.name.startswith(".tmp-")]
    with make_client(artifacts) as c:  # and the service carries on with what it had
        assert c.get("/readyz").json()["bundle_version"] == current
