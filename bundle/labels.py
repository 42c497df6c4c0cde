"""The merchandisers' decisions on photos that look mislabeled: an append-only log that outlives
bundles, written by the console (serving/merch_store.py) and read by the nightly job
(pipelines/label_fixes.py), which writes the accepted categories into the next night's catalog.

    ARTIFACTS/merch/labels.jsonl (or the Redis stream merch/labels, common/state_logs.py)
                                    {"item_id", "decision": "accept" | "dismiss", "category", "note", "at"}
"""

from __future__ import annotations

from pathlib import Path

from common.state_logs import open_state

DECISIONS = ("accept", "dismiss")


LABELS = "merch/labels"  # the log's name in the shared state store (common/state_logs.py)



def latest_decisions(entries: list[dict]) -> dict[str, dict]:
    """The latest decision per item id, from the log's records in order."""
    return {str(d["item_id"]): d for d in entries
            if isinstance(d, dict) and "item_id" in d and d.get("decision") in DECISIONS}


def label_decisions(artifacts: Path, state_url: str | None = None) -> dict[str, dict]:
    """The latest decision per item id, read from the log (the nightly job, which has no service):
    the file under ``artifacts``, or the Redis ``state_url`` the service writes to."""
    return latest_decisions(open_state(state_url, artifacts).read_from(LABELS)[0])
