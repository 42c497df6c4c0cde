"""Micro-batching of concurrent requests on the event loop.

Routes wrap each request in ``with batcher.arrival():`` and ``await submit(item)`` inside it. A
batch starts as soon as every request inside the route is queued (nobody else is on the way), or
at ``max_batch`` queued, or ``max_wait_s`` after its first request, whichever comes first, and runs
the batch function once over up to ``max_batch`` of them. Waiting for the requests already inside
(still reading their bodies) is what makes batches big enough to pay: one model call for ten
requests costs far less than ten calls (docs/benchmarks.md, "Online service"). An idle server adds
no latency: a lone request is the only one inside, so its batch starts at once.

The batch runs *on* the event loop thread, deliberately: the work is CPU-bound Python glued to
ONNX Runtime / FAISS calls, and measured on this 2-core machine, handing it (or only its native
calls) to a worker thread served fewer requests per second than running it inline. The cost is
that other requests on this worker wait for the batch in progress; run one worker process per core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


class Batcher:
    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int = 32, max_wait_s: float = 0.0) -> None:
        """``fn`` maps a list of items to a list of results (an Exception instance = that item's error)."""
        self.fn, self.max_batch, self.max_wait_s = fn, max_batch, max_wait_s
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._timer: asyncio.Handle | None = None
        self._inside = 0  # requests between route entry and their answer (see ``arrival``)

    @contextmanager
    def arrival(self) -> Iterator[None]:
        """Wraps a request from route entry to its answer. A batch starts as soon as every request
        inside is queued (nobody else is on the way), without waiting out ``max_wait_s``."""
        self._inside += 1
        try:
            yield
        finally:
            self._inside -= 1
            if self._pending and len(self._pending) >= self._inside:
                self._schedule(asyncio.get_running_loop(), 0.0)

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= min(self.max_batch, max(self._inside, 1)):
            self._schedule(loop, 0.0)
        elif self._timer is None:
            self._schedule(loop, self.max_wait_s)
        return await fut

    def _schedule(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._flush, loop) if delay > 0 else loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:
            self._schedule(loop, 0.0)  # the rest after the loop has had a turn
        if not batch:
            return
        try:
            results = self.fn([b[0] for b in batch])
        except Exception as e:  # the batch function itself failed: every caller gets the error
            log.exception("batch of %d failed", len(batch))
            results = [e] * len(batch)
        for (_, fut), r in zip(batch, results, strict=True):
            if fut.cancelled():
                continue
            if isinstance(r, BaseException):
                fut.set_exception(r)
            else:
                fut.set_result(r)
