"""The merchandisers' decisions on photos that look mislabeled: an append-only log that outlives
bundles, written by the console (serving/merch_store.py) and read by the nightly job
(pipelines/label_fixes.py), which writes the accepted categories into the next night's catalog.

    ARTIFACTS/merch/labels.jsonl   {"item_id", "decision": "accept" | "dismiss", "category", "note", "at"}
"""

from __future__ import annotations

from pathlib import Path

from common.jsonlines import read_lines

DECISIONS = ("accept", "dismiss")


def merch_dir(artifacts: Path) -> Path:
    """Where the merchandisers' logs live (rules and label decisions), for every bundle version."""
    return artifacts / "merch"


def labels_path(artifacts: Path) -> Path:
    return merch_dir(artifacts) / "labels.jsonl"


def latest_decisions(entries: list[dict]) -> dict[str, dict]:
    """The latest decision per item id, from the log's records in order."""
    return {str(d["item_id"]): d for d in entries
            if isinstance(d, dict) and "item_id" in d and d.get("decision") in DECISIONS}


def label_decisions(artifacts: Path) -> dict[str, dict]:
    """The latest decision per item id, read from the log (the nightly job, which has no service)."""
    return latest_decisions(read_lines(labels_path(artifacts))[0])
