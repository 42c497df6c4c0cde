"""Micro-batching of concurrent requests on the event loop.

Async routes ``await submit(item)``. The first submission in a loop iteration schedules a flush;
by the time it runs, every request that arrived in the meantime is queued, and the flush runs the
batch function once over up to ``max_batch`` of them (then yields to the loop and continues with
the rest). Nothing waits for a batch to fill, so an idle server adds no latency.

The batch runs *on* the event loop thread, deliberately: the work is CPU-bound Python glued to
ONNX Runtime / FAISS calls, and measured on this 2-core machine, a worker thread fighting the loop
for the GIL served fewer requests per second (and a worse p99) than running the batch inline
(docs/benchmarks.md, "Online service"). The cost is that other requests on this worker wait for
the batch in progress (a few ms per request in it); run one worker process per core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Batcher:
    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int = 32) -> None:
        """``fn`` maps a list of items to a list of results (an Exception instance = that item's error)."""
        self.fn, self.max_batch = fn, max_batch
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._scheduled = False
        self.batches = self.items = 0  # counters, for metrics and tests

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((item, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return await fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:
            loop.call_soon(self._flush, loop)  # the rest after the loop has had a turn
        else:
            self._scheduled = False
        try:
            results = self.fn([b[0] for b in batch])
        except Exception as e:  # the batch function itself failed: every caller gets the error
            log.exception("batch of %d failed", len(batch))
            results = [e] * len(batch)
        self.batches += 1
        self.items += len(batch)
        for (_, fut), r in zip(batch, results, strict=True):
            if fut.cancelled():
                continue
            if isinstance(r, BaseException):
                fut.set_exception(r)
            else:
                fut.set_result(r)
