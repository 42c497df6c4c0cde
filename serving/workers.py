"""Several server processes on one port, each with its own listening socket (SO_REUSEPORT).

uvicorn's ``--workers N`` hands one listening socket to N processes, and whichever wakes first
accepts every connection waiting (the event loop accepts until the queue is empty). A client that
opens its keep-alive connections in a burst — a storefront's connection pool, a load balancer, wrk —
then lands them unevenly: 16 connections split 13/3, 9/7, 14/2 and 10/6 over four runs, against
9/7, 9/7, 8/8, 9/7 with one SO_REUSEPORT socket per worker, where the kernel spreads new connections
itself (bench/workers_bench.py; docs/benchmarks.md, "Thread pools and sockets per worker").

:class:`Workers` is uvicorn's own supervisor (health pings, a dead worker replaced, SIGHUP
restarts) with one change: worker slot ``i`` always gets socket ``i``, so a replacement takes over
its predecessor's socket and the connections queued on it.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger(__name__)


def reuseport_sockets(host: str, port: int, n: int, backlog: int = 2048) -> list[socket.socket]:
    """``n`` listening sockets on one address, the kernel balancing new connections across them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port if not out else out[0].getsockname()[1]))  # port 0: the first socket picks it
        s.listen(backlog)
        s.set_inheritable(True)
        out.append(s)
    return out


class Workers(Multiprocess):
    """uvicorn's multiprocess supervisor with a socket per worker slot (see the module docstring)."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        if len(sockets) != config.workers:
            raise ValueError(f"{config.workers} workers need as many sockets, got {len(sockets)}")
        super().__init__(config, sockets)

    def _spawn(self, slot: int) -> Process:
        p = Process(self.config, [self.sockets[slot]])
        p.start()
        return p

    def init_processes(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.processes_num)]

    def restart_all(self) -> None:
        """SIGHUP: each slot's replacement starts before its predecessor stops (as uvicorn does)."""
        for i, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(i)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                log.error("worker %s was not ready in time; keeping %s", new.pid, old.pid)
                return
            old.terminate()
            old.join()
            self.processes[i] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for i, p in enumerate(self.processes):
            if p.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            p.kill()  # hung or dead
            p.join()
            if p.exitcode == STARTUP_FAILURE:  # the app cannot start: every restart would fail alike
                log.error("worker %s failed to start; stopping", p.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("worker %s died; starting its replacement", p.pid)
            self.processes[i] = self._spawn(i)

    def handle_ttin(self) -> None:
        log.warning("SIGTTIN ignored: the workers' sockets and thread pools are sized at start; restart with "
                    "another --workers")

    handle_ttou = handle_ttin


def run(app: str, *, host: str, port: int, workers: int, **config: object) -> None:
    """``uvicorn.run(app, factory=True, workers=N, ...)`` with a socket per worker (one worker: plain uvicorn)."""
    if workers <= 1:
        uvicorn.run(app, factory=True, host=host, port=port, **config)
        return
    cfg = Config(app, factory=True, host=host, port=port, workers=workers, **config)
    Workers(cfg, reuseport_sockets(host, port, workers, cfg.backlog)).run()
