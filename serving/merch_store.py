"""What merchandisers decide, kept across bundles: the rules (serving/rules.py), the decisions on
photos that look mislabeled and the experiments. Three append-only logs in the shared state store
(common/state_logs.py: files on one host, Redis streams across replicas) that every worker reads:

    merch/rules        {"op": "put", "rule": {...}} | {"op": "delete", "rule_id": ...}
    merch/labels       {"item_id", "decision": "accept" | "dismiss", "category", "at"}
    merch/experiments  {"op": "put", "experiment": {...}} (serving/experiments.py)

A worker reads what was appended since its cursor at most once per ``poll_s``: a rule saved through
one worker is in effect in all of them within a second. When the store does not answer, reads keep
the last state and writes fail (503) with nothing half-done. An accepted label is applied to the
loaded bundle live (``apply_labels``) and to the next night's data (pipelines/label_fixes.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bundle.labels import LABELS, latest_decisions
from common.state_logs import START, FileLogs, StateLogs, StateUnavailableError
from serving.experiments import Experiment
from serving.rules import Rule, RuleSet

log = logging.getLogger(__name__)


class _Followed:
    """A log's folded state, brought up to date from its cursor (checked at most every ``poll_s``)."""

    def __init__(self, state: StateLogs, name: str, fold, poll_s: float) -> None:
        self.state, self.name, self.fold, self.poll_s = state, name, fold, poll_s
        self.cursor, self.entries, self.checked, self.value = START, [], 0.0, fold([])
        self.lock = threading.Lock()

    def get(self, fresh: bool = False):
        """Up to date within ``poll_s``; a remote store is read only when ``fresh`` (the background
        follower's call, or after a write), so a request never waits on the network."""
        now = time.monotonic()
        if fresh or (not self.state.remote and now - self.checked >= self.poll_s):
            with self.lock:
                self.checked = now
                try:
                    new, self.cursor = self.state.read_from(self.name, self.cursor)
                except StateUnavailableError as e:  # keep serving the last state; /readyz says why
                    log.warning("%s: %s", self.name, e)
                    return self.value
                if new:
                    self.entries += new
                    self.value = self.fold(self.entries)
        return self.value

    def append(self, record: dict) -> None:
        self.state.append(self.name, record)
        self.get(True)


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
    def __init__(self, artifacts: Path, poll_s: float = 1.0, state: StateLogs | None = None) -> None:
        state = state or FileLogs(artifacts)
        self._rules = _Followed(state, "merch/rules", _fold_rules, poll_s)
        self._labels = _Followed(state, LABELS, _fold_labels, poll_s)
        self._experiments = _Followed(state, "merch/experiments", _fold_experiments, poll_s)

    def refresh(self) -> None:
        """Read what every log gained (serving/reload.py::follow_changes calls it each poll)."""
        for f in (self._rules, self._labels, self._experiments):
            f.get(True)

    # ---------------------------------------------------------------- rules

    def rules(self, fresh: bool = False) -> RuleSet:
        return RuleSet(list(self._rules.get(fresh).values()))

    def save_rule(self, rule: Rule) -> Rule:
        """Logged durably, then in effect in this worker at once (and in the others within ``poll_s``)."""
        if rule.rule_id is None:
            rule = rule.model_copy(update={"rule_id": uuid.uuid4().hex[:12]})
        self._rules.append({"op": "put", "rule": rule.model_dump(mode="json"), "at": datetime.now(UTC).isoformat()})
        return rule

    def delete_rule(self, rule_id: str) -> bool:
        if rule_id not in self._rules.get(True):
            return False
        self._rules.append({"op": "delete", "rule_id": rule_id, "at": datetime.now(UTC).isoformat()})
        return True

    # ---------------------------------------------------------------- experiments

    def experiments(self, fresh: bool = False) -> list[Experiment]:
        """Every experiment, oldest first (running or ended)."""
        return list(self._experiments.get(fresh).values())

    def save_experiment(self, exp: Experiment) -> Experiment:
        """Logged durably (an id and a salt assigned when missing), in effect in every worker within a poll."""
        fill = {"experiment_id": exp.experiment_id or uuid.uuid4().hex[:12], "salt": exp.salt or uuid.uuid4().hex}
        exp = exp.model_copy(update=fill)
        self._experiments.append({"op": "put", "experiment": exp.model_dump(mode="json"),
                                   "at": datetime.now(UTC).isoformat()})
        return exp

    # ---------------------------------------------------------------- label decisions

    def label_entries(self, fresh: bool = False) -> list[dict]:
        """Every decision in the order made (``apply_labels`` applies the ones it has not seen)."""
        return self._labels.get(fresh)

    def decide(self, item_id: str, decision: str, category: str | None, note: str = "") -> dict:
        record = {"item_id": item_id, "decision": decision, "category": category, "note": note,
                  "at": datetime.now(UTC).isoformat()}
        self._labels.append(record)
        return record

    def decisions(self) -> dict[str, dict]:
        """The latest decision per item id."""
        return latest_decisions(self._labels.get())
