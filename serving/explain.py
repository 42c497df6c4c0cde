"""Why each recommended product is on the page (``"explain": true`` in a recommendation request):
which recall channel found it, the shopper's history item it is most like, where it stood in the
candidate list the ranker received and after the ranker, and the merchandising rules that moved
or placed it. Computed only for the page's items, after the page is chosen."""

from __future__ import annotations

import numpy as np

from recsys.channels import Candidates


def _positions(order: np.ndarray | None) -> dict[int, int]:
    return {} if order is None else {r: i + 1 for i, r in enumerate(order.tolist())}


def reasons(vectors: np.ndarray, item_ids, page: np.ndarray, history: np.ndarray, retrieved: np.ndarray | None,
            ranked: np.ndarray | None, channels: Candidates | None, rules_by_row: dict[int, list[str]],
            fallback: str | None) -> list[dict]:
    """One reason (the fields of ``schemas.Reason``) per row of ``page``.

    vectors: (I, D) item-tower vectors (similarity to the history); retrieved: the candidate rows in
    the order the ranker received them (the popularity order for the fallback); ranked: the same rows
    in the ranker's order (None for the fallback); channels: the recall channels' view of
    ``retrieved`` (None: the tower alone)."""
    page = np.asarray(page, np.int64)
    hist = np.asarray(history, np.int64)[:50]
    because: list[str | None] = [None] * len(page)
    if len(hist) and len(page):
        sim = vectors[page] @ vectors[hist].T  # (P, H)
        sim[page[:, None] == hist[None, :]] = -np.inf  # a product is not its own reason
        best = sim.argmax(1)
        ok = np.isfinite(sim[np.arange(len(page)), best])
        because = [item_ids[int(hist[j])] if k else None for j, k in zip(best.tolist(), ok.tolist(), strict=True)]
    at_retrieval, at_rank = _positions(retrieved), _positions(ranked)
    found = channels.found_by() if channels is not None else {}  # row -> the channels (recsys.channels.CHANNELS)
    out = []
    for i, r in enumerate(page.tolist()):
        if fallback is not None:
            chans = [fallback] if r in at_retrieval else []
        elif channels is not None:
            chans = found.get(r, [])
        else:
            chans = ["tower"] if r in at_retrieval else []
        rules = rules_by_row.get(r, [])
        if not chans and rules:
            chans = ["rule"]  # not a candidate at all: a pin placed it
        out.append({"channels": chans, "because_of": because[i],
                    "retrieved_at": at_retrieval.get(r), "ranked_at": at_rank.get(r), "rules": rules})
    return out
