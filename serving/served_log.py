"""What the service served, logged so that what shoppers then did can be attributed to it (docs/online.md).

Every answer of ``/v1/recommendations``, ``/v1/items/{id}/similar`` and ``/v1/images/search`` carries
a ``rec_id``: 12 random bytes and an HMAC of them under the folder's key (bundle/logs.py ``keys``),
so a forged or altered one never verifies and its events count as unattributed. The request path
only mints the token and queues what it served; a background thread writes the list — rec_id,
placement, the shopper's salted key, bundle version, variant and, per item, its position, the recall
channels that found it, its rank before the merchandising rules, the rules that moved it, its score —
to the ``served`` log (group commit, never waited on by a request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
from pydantic_core import to_json

from bundle.logs import BacklogError, SegmentWriter, keys, shopper_hash
from recsys.channels import CHANNELS
from recsys.union_kernel import ABSENT

log = logging.getLogger(__name__)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class RecTokens:
    """Mint and check rec_ids: ``r<16 chars>.<12 chars>`` (random id, truncated HMAC-SHA256)."""

    def __init__(self, key: str) -> None:
        self.key = bytes.fromhex(key)

    def _sig(self, rid: str) -> str:
        return _b64(hmac.new(self.key, rid.encode(), hashlib.sha256).digest()[:9])

    def new(self) -> str:
        rid = "r" + _b64(secrets.token_bytes(12))
        return f"{rid}.{self._sig(rid)}"

    def verify(self, token: str | None) -> bool:
        if not token or token.count(".") != 1:
            return False
        rid, sig = token.split(".")
        return hmac.compare_digest(sig, self._sig(rid))


def page_details(page: np.ndarray, ranked: np.ndarray | None, candidates, by_row: dict[int, list[str]],
                 own: tuple[str, set[int] | None] | None = None) -> list[tuple[list[str], int | None, list[str]]]:
    """Per page row: the channels whose lists held it, its 1-based rank before the rules (None: the
    rules placed it), the rules that moved or placed it. ``own``: a placement's own source (serving/
    placements.py) and the rows it gave (None: every ranked row), logged as their channel."""
    page = np.asarray(page, np.int64)
    cols = np.arange(len(page))

    def first(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # each page row's first index in rows, and if any
        eq = np.asarray(rows, np.int64)[:, None] == page[None, :]  # (R, P)
        at = eq.argmax(0)  # (P,)  (argmax, not nonzero: a tenth of the cost on the request's core)
        return at, eq[at, cols]

    pre: list[int | None] = [None] * len(page)
    if ranked is not None and len(ranked) and len(page):
        at, ok = first(ranked)
        pre = [int(a) + 1 if o else None for a, o in zip(at.tolist(), ok.tolist(), strict=True)]
    found: list[list[str]] = [[] for _ in range(len(page))]
    if candidates is not None and len(candidates.rows) and len(page):
        at, ok = first(candidates.rows)
        held = np.stack([getattr(candidates, f"{c}_rank")[at] for c in CHANNELS], 1) < ABSENT  # (P, channels)
        found = [[c for c, x in zip(CHANNELS, h, strict=True) if x] if o else []
                 for h, o in zip(held.tolist(), ok.tolist(), strict=True)]
    if own is not None:
        name, rows = own
        found = [[name] if pre[j] is not None and (rows is None or r in rows) else f
                 for j, (r, f) in enumerate(zip(page.tolist(), found, strict=True))]
    return [(found[j], pre[j], by_row.get(r, [])) for j, r in enumerate(page.tolist())]


class ServedLog:
    """The served lists, queued by the request path and written by a background thread. The request
    path only appends to a deque (no lock, no wake-up: waking a thread per request cost a few per cent
    of requests/s on the busy core); the thread drains it every ``interval_s``."""

    def __init__(self, root: Path, writer: SegmentWriter | None, *, max_queue: int = 50_000,
                 interval_s: float = 0.05) -> None:
        k = keys(root)
        self.tokens, self.salt, self.writer = RecTokens(k["rec_key"]), k["salt"], writer
        self.queue: deque = deque(maxlen=max_queue)  # full: the oldest unwritten list is dropped (counted)
        self.dropped = 0
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="served-log")
        if writer is not None:
            self.thread.start()

    def served(self, route: str, placement: str | None, user_id: str | None, session_id: str | None, version: str,
               items: list[dict], detail: tuple | None = None, variant: str | None = None,
               teams: list[str] | None = None, propensities: list[float] | None = None,
               order: list[int] | None = None) -> str:
        """A new rec_id for this answer; the list is queued for the log (never waited on). ``variant``:
        the experiment's tag; ``teams``: per item, the interleaved variant that placed it;
        ``propensities``: per item, the probability of its position under exploration; ``order``: where
        each shown item was in the service's order (exploration reorders what ``detail`` describes)."""
        token = self.tokens.new()
        if self.writer is not None:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append((token, time.time(), route, placement, user_id, session_id, version, variant,
                               [(i["item_id"], i["score"]) for i in items], detail, teams, propensities, order))
        return token

    def _line(self, entry: tuple) -> bytes:
        token, ts, route, placement, user_id, session_id, version, variant, items, detail, teams, props, order = entry
        extra = page_details(*detail) if detail is not None else [([], j + 1, []) for j in range(len(items))]
        if order is not None and detail is not None:
            extra = [extra[j] for j in order if j < len(extra)]
        rows = [{"item_id": iid, "position": j + 1, "channels": ch, "pre_rank": pre, "rules": rules, "score": sc,
                 "team": teams[j] if teams else None, "propensity": props[j] if props else None}
                for j, ((iid, sc), (ch, pre, rules)) in enumerate(zip(items, extra, strict=False))]
        return to_json({"rec_id": token, "ts": int(ts * 1000), "route": route, "placement": placement,
                        "shopper": shopper_hash(self.salt, user_id, session_id), "version": version,
                        "variant": variant, "items": rows}) + b"\n"

    def _drain(self) -> None:
        batch = [self.queue.popleft() for _ in range(len(self.queue))]  # popleft is atomic: appends may go on
        if not batch:
            return
        try:
            self.writer.append([self._line(e) for e in batch])
        except BacklogError:
            self.dropped += len(batch)
            log.warning("served log: %d lists dropped (the disk is behind)", len(batch))
        except Exception:  # the log must never take a recommendation down
            log.exception("served log: %d lists not written", len(batch))

    def _run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self._drain()
        self._drain()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
