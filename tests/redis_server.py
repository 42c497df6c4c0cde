"""A real redis-server (Debian's package) on a loopback port, as a subprocess, for the shared-state tests.
Missing binary = a loud failure, not a skip: CI installs it (./dev)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``start()`` / ``stop()`` / ``kill()`` keep the port and the data folder: a restart finds what an
    acknowledged write left (append-only file, fsync'ed on every write)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found: apt-get install redis-server (./dev test installs it)"
        self.binary, self.folder, self.port = binary, folder, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.folder), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                                      "--protected-mode", "no"], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.time() + 20
        while True:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                pass
            assert self.proc.poll() is None and time.time() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: what Redis acknowledged is in its append-only file (appendfsync always)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    stop = kill
