"""Helpers for the tests that start the real server on loopback."""

import json
import socket
from pathlib import Path

from bundle.versions import bundles_dir, current_version, write_bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def republish(artifacts: Path, version: str = "20990101T000000Z") -> tuple[str, str]:
    """(the current version, a second version with the same files, published but not promoted)."""
    v1 = current_version(artifacts)
    src = bundles_dir(artifacts) / v1
    manifest = json.loads((src / "manifest.json").read_text())
    info = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    return v1, write_bundle(artifacts, {f: src / f for f in manifest["files"]}, info, version=version).name
