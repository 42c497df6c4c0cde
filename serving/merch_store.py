"""What merchandisers decide, kept across bundles: the rules (serving/rules.py) and the decisions
on photos that look mislabeled. Two append-only logs every worker reads (common/jsonlines.py):

    ARTIFACTS/merch/rules.jsonl    {"op": "put", "rule": {...}} | {"op": "delete", "rule_id": ...}
    ARTIFACTS/merch/labels.jsonl   {"item_id", "decision": "accept" | "dismiss", "category", "at"}
    ARTIFACTS/merch/experiments.jsonl  {"op": "put", "experiment": {...}} (serving/experiments.py)

A worker re-reads a log when its size changed, at most once per ``poll_s``: a rule saved through
one worker is in effect in all of them within a second. An accepted label is applied to the loaded
bundle live (``apply_labels``) and to the next night's data (pipelines/label_fixes.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bundle.labels import labels_path, latest_decisions, merch_dir
from common.jsonlines import append_line, read_lines
from serving.experiments import Experiment
from serving.rules import Rule, RuleSet


class _Followed:
    """A log's folded state, re-read when the file grew (checked at most every ``poll_s``)."""

    def __init__(self, path: Path, fold, poll_s: float) -> None:
        self.path, self.fold, self.poll_s = path, fold, poll_s
        self.size, self.checked, self.value = -1, 0.0, fold([])
        self.lock = threading.Lock()

    def get(self, fresh: bool = False):
        now = time.monotonic()
        if fresh or now - self.checked >= self.poll_s:
            with self.lock:
                self.checked = now
                size = self.path.stat().st_size if self.path.exists() else 0
                if size != self.size:
                    self.value, self.size = self.fold(read_lines(self.path)[0]), size
        return self.value


def _fold_rules(entries: list[dict]) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for e in entries:
        if e.get("op") == "put":
            try:
                r = Rule.model_validate(e["rule"])
            except (KeyError, ValueError):
                continue  # a record a newer or older version wrote: the others stand
            rules[r.rule_id] = r
        elif e.get("op") == "delete":
            rules.pop(e.get("rule_id"), None)
    return rules


def _fold_experiments(entries: list[dict]) -> dict[str, Experiment]:
    out: dict[str, Experiment] = {}
    for e in entries:
        try:
            x = Experiment.model_validate(e["experiment"])
        except (KeyError, TypeError, ValueError):
            continue
        out[x.experiment_id] = x
    return out


def _fold_labels(entries: list[dict]) -> list[dict]:
    return [e for e in entries if isinstance(e, dict) and "item_id" in e]


class MerchStore:
    def __init__(self, artifacts: Path, poll_s: float = 1.0) -> None:
        self.root = merch_dir(artifacts)
        self._rules = _Followed(self.root / "rules.jsonl", _fold_rules, poll_s)
        self._labels = _Followed(labels_path(artifacts), _fold_labels, poll_s)
        self._experiments = _Followed(self.root / "experiments.jsonl", _fold_experiments, poll_s)

    # ---------------------------------------------------------------- rules

    def rules(self, fresh: bool = False) -> RuleSet:
        return RuleSet(list(self._rules.get(fresh).values()))

    def save_rule(self, rule: Rule) -> Rule:
        """Logged durably, then in effect in this worker at once (and in the others within ``poll_s``)."""
        if rule.rule_id is None:
            rule = rule.model_copy(update={"rule_id": uuid.uuid4().hex[:12]})
        append_line(self._rules.path, {"op": "put", "rule": rule.model_dump(mode="json"),
                                       "at": datetime.now(UTC).isoformat()})
        self._rules.get(True)
        return rule

    def delete_rule(self, rule_id: str) -> bool:
        if rule_id not in self._rules.get(True):
            return False
        append_line(self._rules.path, {"op": "delete", "rule_id": rule_id, "at": datetime.now(UTC).isoformat()})
        self._rules.get(True)
        return True

    # ---------------------------------------------------------------- experiments

    def experiments(self, fresh: bool = False) -> list[Experiment]:
        """Every experiment, oldest first (running or ended)."""
        return list(self._experiments.get(fresh).values())

    def save_experiment(self, exp: Experiment) -> Experiment:
        """Logged durably (an id and a salt assigned when missing), in effect in every worker within a poll."""
        fill = {"experiment_id": exp.experiment_id or uuid.uuid4().hex[:12], "salt": exp.salt or uuid.uuid4().hex}
        exp = exp.model_copy(update=fill)
        append_line(self._experiments.path, {"op": "put", "experiment": exp.model_dump(mode="json"),
                                             "at": datetime.now(UTC).isoformat()})
        self._experiments.get(True)
        return exp

    # ---------------------------------------------------------------- label decisions

    def label_entries(self, fresh: bool = False) -> list[dict]:
        """Every decision in the order made (``apply_labels`` applies the ones it has not seen)."""
        return self._labels.get(fresh)

    def decide(self, item_id: str, decision: str, category: str | None, note: str = "") -> dict:
        record = {"item_id": item_id, "decision": decision, "category": category, "note": note,
                  "at": datetime.now(UTC).isoformat()}
        append_line(self._labels.path, record)
        self._labels.get(True)
        return record

    def decisions(self) -> dict[str, dict]:
        """The latest decision per item id."""
        return latest_decisions(self._labels.get())
