"""Append-only JSON-lines files, written durably: the admin change log (serving/live.py) and the
merchandisers' rules and label decisions (serving/merch_store.py) are all this."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, record: dict) -> None:
    """Write one record durably *before* it is acted on (a failed write — disk full — is the
    request's 500, with nothing changed). A torn last line from a crash is closed first, so it
    never swallows this record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a+b") as f:
        f.seek(0, os.SEEK_END)
        torn = False
        if f.tell():
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        f.write((b"\n" if torn else b"") + json.dumps(record, sort_keys=True).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


def read_lines(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete records from byte ``offset`` on, and the offset after the last complete line (a
    line still being written is left for the next read; an unreadable one is skipped)."""
    if not path.is_file():
        return [], 0
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    out = []
    for n, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn line from a crash: everything around it stands
            log.warning("%s: unreadable record %d after byte %d, skipped", path, n, offset)
    return out, offset + end
