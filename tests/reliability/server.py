"""Helpers for the tests that start the real server on loopback."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from bundle.versions import bundles_dir, current_version, write_bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """The app on a loopback port in a thread of this process (uvicorn); yields its base URL."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(10)


def republish(artifacts: Path, version: str = "20990101T000000Z") -> tuple[str, str]:
    """(the current version, a second version with the same files, published but not promoted)."""
    v1 = current_version(artifacts)
    src = bundles_dir(artifacts) / v1
    manifest = json.loads((src / "manifest.json").read_text())
    info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    return v1, write_bundle(artifacts, {f: src / f for f in manifest["files"]}, info, version=version).name
