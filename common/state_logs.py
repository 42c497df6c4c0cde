"""The live state every worker and replica shares, as named append-only logs: the admin change log
per bundle version (serving/live.py), the merchandisers' rules, label decisions and experiments
(serving/merch_store.py), and the shoppers' accepted events (serving/realtime.py).

Two stores behind one interface (``append``, ``read_from`` a cursor):

- :class:`FileLogs` (the default, one host): ``ARTIFACTS/<name>.jsonl`` written durably
  (common/jsonlines.py); a cursor is a byte offset.
- :class:`RedisLogs` (``VITRINE_STATE_URL=redis://host:port/db``, several hosts): one Redis stream
  per log (``XADD``; an entry's id is its cursor), so a reader that was away reads exactly what it
  missed with ``XRANGE (cursor +``, nothing twice. A record is acknowledged only after Redis
  answered its ``XADD``; run Redis with ``appendonly yes`` (``appendfsync always`` for nothing lost
  on a Redis crash; docs/scaling.md).

A log name is a few path-like words (``merch/rules``, ``live/<version>/changes``) checked against
:data:`NAME` before it becomes a path or a key.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Protocol

from common.jsonlines import append_line, read_lines

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")
URL = r"^(redis|rediss|unix)://"  # what VITRINE_STATE_URL may be (both settings classes check it)
START = "0"  # the cursor before a log's first record, in both stores


class StateUnavailableError(RuntimeError):
    """The shared store did not answer: nothing was written; the caller says 503 and keeps its last state."""


def _checked(name: str) -> str:
    if not NAME.match(name) or ".." in name:
        raise ValueError(f"bad state log name {name!r}")
    return name


class StateLogs(Protocol):
    remote: bool  # reached over the network: readers refresh in the background, never on a request
    def append(self, name: str, record: dict) -> None: ...
    def append_many(self, name: str, records: list[dict], maxlen: int | None = None) -> None: ...
    def read_from(self, name: str, cursor: str = START) -> tuple[list[dict], str]: ...
    def put_blob(self, key: str, data: bytes) -> None: ...
    def get_blob(self, key: str) -> bytes | None: ...
    def problem(self) -> str | None: ...


class FileLogs:
    """``root/<name>.jsonl``; blobs are not needed (the files are on the same disk)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / f"{_checked(name)}.jsonl"

    def append(self, name: str, record: dict) -> None:
        append_line(self.path(name), record)

    def append_many(self, name: str, records: list[dict], maxlen: int | None = None) -> None:  # noqa: ARG002
        for r in records:
            append_line(self.path(name), r)

    def read_from(self, name: str, cursor: str = START) -> tuple[list[dict], str]:
        records, offset = read_lines(self.path(name), int(cursor))
        return records, str(offset)

    def put_blob(self, key: str, data: bytes) -> None:  # noqa: ARG002 - the file is already shared
        return None

    def get_blob(self, key: str) -> bytes | None:  # noqa: ARG002
        return None

    def problem(self) -> str | None:
        return None


class RedisLogs:
    """One Redis stream per log under ``prefix``; blobs (uploaded photos) as plain keys."""

    remote = True

    def __init__(self, url: str, prefix: str = "vitrine", timeout_s: float = 2.0) -> None:
        import redis  # only where a Redis URL is configured

        self.url, self.prefix = url, prefix
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._errors = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError)
        self._problem: str | None = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{_checked(name)}"

    def _call(self, fn, *args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except self._errors as e:
            self._problem = f"shared state unreachable ({self.where()}): {type(e).__name__}"
            raise StateUnavailableError(self._problem) from e
        if self._problem:
            log.info("shared state reachable again (%s)", self.where())
        self._problem = None
        return out

    def where(self) -> str:
        """The URL without a password."""
        return re.sub(r"//[^@/]*@", "//…@", self.url)

    def append(self, name: str, record: dict) -> None:
        self._call(self.client.xadd, self._key(name), {"r": json.dumps(record, sort_keys=True)})

    def append_many(self, name: str, records: list[dict], maxlen: int | None = None) -> None:
        """One round trip for all of them (a pipeline); ``maxlen``: keep about that many (trimmed in
        whole nodes, Redis' cheap ``~`` form)."""
        pipe = self.client.pipeline(transaction=False)
        for r in records:
            pipe.xadd(self._key(name), {"r": json.dumps(r, sort_keys=True)}, maxlen=maxlen, approximate=True)
        self._call(pipe.execute)

    def read_from(self, name: str, cursor: str = START) -> tuple[list[dict], str]:
        lo = "-" if cursor == START else f"({cursor}"
        out: list[dict] = []
        while True:  # in pages, so a reader that was away long does not pull one huge reply
            page = self._call(self.client.xrange, self._key(name), lo, "+", count=1000)
            for entry_id, fields in page:
                cursor = entry_id.decode()
                try:
                    out.append(json.loads(fields[b"r"]))
                except (KeyError, json.JSONDecodeError):
                    log.warning("%s: unreadable entry %s skipped", name, cursor)
            if len(page) < 1000:
                return out, cursor
            lo = f"({cursor}"

    def put_blob(self, key: str, data: bytes) -> None:
        self._call(self.client.set, self._key(key), data)

    def get_blob(self, key: str) -> bytes | None:
        return self._call(self.client.get, self._key(key))

    def problem(self) -> str | None:
        """Why the store did not answer its last call (the followers call it every second), or None."""
        return self._problem


def open_state(url: str | None, artifacts: Path) -> StateLogs:
    """Redis when ``url`` names it, else files under ``artifacts`` (one host's default)."""
    if not url:
        return FileLogs(artifacts)
    if not re.match(URL, url):
        raise ValueError(f"VITRINE_STATE_URL must be a redis:// URL, got {url.split(':', 1)[0]}:…")
    return RedisLogs(url)
