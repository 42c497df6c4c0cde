"""Merchandising rules: pin a product to a slot, boost or bury a product or a category, exclude
products or a category; everywhere or on one category's page, between a start and an end time.

The business-rules stage of every recommendation is a small pipeline owned by this module: the
rules in effect are compiled once per request (``RulePlan``) and run in a fixed order a
merchandiser can predict, ``STAGES``:

    filter  exclude: cleared in the request's filter mask, so retrieval and the popular fallback
            refill the page and no pin can bring the product back
    move    boost / bury: matching products move up / down by ``positions`` places
    cap     the request's category cap (``diversity``): at most that many products per category
    place   pin: the pinned product at its slot, if the request's filters allow it

Each action is one ``Action`` in ``ACTIONS``: its stage, the fields it uses and its handler. The
API's rule schema and the console's rule form are rendered from the same declaration, so a new
rule type is a handler and a line in ``ACTIONS`` (and its test). Rules are stored in
``ARTIFACTS/merch/rules.jsonl`` (serving/merch_store.py) and outlive bundles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.errors import RequestError

STAGES = ("filter", "move", "cap", "place")


class CatalogView(Protocol):
    """What rules read of a catalog (serving/catalog.py ``Catalog``)."""

    row_of: object  # item id -> row (``.get``, ``in``)
    category_names: list[str]

    @property
    def codes(self) -> np.ndarray: ...  # (I,) each row's category code

    def code_of(self, names: list[str]) -> np.ndarray: ...


# ---------------------------------------------------------------------- handlers, one per action


def _exclude(rule: Rule, target: np.ndarray) -> np.ndarray:
    """filter: the rows the rule names leave the request's mask."""
    return target


def _boost(rule: Rule, key: np.ndarray, hit: np.ndarray) -> None:
    """move: each matching row's sort key goes up ``positions`` places."""
    key[hit] -= rule.positions


def _bury(rule: Rule, key: np.ndarray, hit: np.ndarray) -> None:
    """move: each matching row's sort key goes down ``positions`` places."""
    key[hit] += rule.positions


def _pin(rule: Rule, rows: list[int], row: int) -> list[int]:
    """place: the product at its slot (1-based), moved there if listed elsewhere, inserted if not; a
    slot past the list's end appends."""
    if row in rows:
        rows.remove(row)
    rows.insert(min(rule.slot - 1, len(rows)), row)
    return rows


@dataclass(frozen=True)
class Action:
    """A kind of rule: what it does, at which stage, with which fields; the form and the schema read it."""

    name: str
    stage: str  # one of STAGES (never "cap": that is the request's own)
    help: str
    handler: Callable
    item_only: bool = False  # targets one product (never a whole category)
    uses: tuple[str, ...] = ()  # the fields of ``Rule`` beyond the target that it reads (required)
    reads: tuple[str, ...] = ()  # fields it reads that have a default


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("pin", "place", "show a product at a slot", _pin, item_only=True, uses=("slot",)),
    Action("boost", "move", "move a product or a category up some places", _boost, reads=("positions",)),
    Action("bury", "move", "move a product or a category down some places", _bury, reads=("positions",)),
    Action("exclude", "filter", "never show a product or a category", _exclude),
)}
ActionName = Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
_ONLY_FOR = {"slot": [a.name for a in ACTIONS.values() if "slot" in a.uses]}  # optional fields some actions need


class Rule(BaseModel):
    """One merchandising rule. Target: exactly one of ``item_id`` / ``category`` (a pin takes an item)."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                description="Assigned by the server when omitted; saving the same id replaces it.")
    action: ActionName = Field(description="; ".join(f"{a.name}: {a.help}" for a in ACTIONS.values()))
    item_id: str | None = Field(None, max_length=200, description="The product the rule is about.")
    category: str | None = Field(None, max_length=200, description="Or: every product of this category.")
    slot: int | None = Field(None, ge=1, le=100, description="pin: 1-based position in the ranked list.")
    positions: int = Field(10, ge=1, le=1000, description="boost / bury: places a matching product moves.")
    scope: str | None = Field(None, max_length=200, description="null: every recommendation; a category: only "
                              "requests filtered to exactly that category (its category page).")
    starts_at: datetime | None = Field(None, description="In effect from (UTC when no zone is given); null: now.")
    ends_at: datetime | None = Field(None, description="In effect until; null: until deleted.")
    note: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        a = ACTIONS[self.action]
        if (self.item_id is None) == (self.category is None):
            raise ValueError("give exactly one of item_id or category")
        if (a.item_only and self.item_id is None) or any(getattr(self, f) is None for f in a.uses):
            needs = (["an item_id"] if a.item_only else []) + [f"a {f}" for f in a.uses]
            raise ValueError(f"a {a.name} needs " + " and ".join(needs))
        for f, actions in _ONLY_FOR.items():
            if getattr(self, f) is not None and self.action not in actions:
                raise ValueError(f"{f} is for {'/'.join(n + 's' for n in actions)}, not {self.action}")
        if self.starts_at and self.ends_at and _utc(self.ends_at) <= _utc(self.starts_at):
            raise ValueError(f"ends_at {self.ends_at} is not after starts_at {self.starts_at}")
        return self

    def active(self, now: datetime) -> bool:
        started = self.starts_at is None or _utc(self.starts_at) <= now
        return started and (self.ends_at is None or now < _utc(self.ends_at))


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def check_rule(rule: Rule, catalog: CatalogView) -> None:
    """A RequestError (422) for a rule about a product or a category this catalog does not have."""
    name = f"rule {rule.rule_id}" if rule.rule_id else f"{rule.action} rule"
    if rule.item_id is not None and rule.item_id not in catalog.row_of:
        raise RequestError(f"{name}: unknown item {rule.item_id!r}")
    for field_, value in (("category", rule.category), ("scope", rule.scope)):
        if value is not None and value not in catalog.category_names:
            raise RequestError(f"{name}: unknown {field_} {value!r}; known: {catalog.category_names}")


class RuleSet:
    """The saved rules (active or not); ``plan`` compiles the ones in effect for a request."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = list(rules)

    def __len__(self) -> int:
        return len(self.rules)

    def for_request(self, now: datetime, page_category: str | None) -> list[Rule]:
        """Rules active at ``now`` whose scope is everywhere or this request's category page."""
        return [r for r in self.rules if r.active(now) and (r.scope is None or r.scope == page_category)]

    def plan(self, catalog: CatalogView, categories: list[str] | None, now: datetime | None = None) -> RulePlan:
        """The rules in effect for a request filtered to ``categories``, compiled against ``catalog``."""
        return RulePlan(self.for_request(now or datetime.now(UTC), page_category(categories)), catalog)


def page_category(categories: list[str] | None) -> str | None:
    """A request filtered to exactly one category is that category's page."""
    return categories[0] if categories is not None and len(categories) == 1 else None


@dataclass
class RuleEffect:
    """What the rules did to one ranked list: the rule ids behind each row they moved or placed."""

    by_row: dict[int, list[str]] = field(default_factory=dict)

    def note(self, rows: list[int], rule: Rule) -> None:
        for row in rows:
            self.by_row.setdefault(row, []).append(rule.rule_id or rule.action)


def diversify(rows: np.ndarray, codes: np.ndarray, cap: int | None) -> np.ndarray:
    """The ``cap`` stage: positions into ``rows`` in ranked order with at most ``cap`` per category
    code (rows past the cap dropped)."""
    if cap is None:
        return np.arange(len(rows))
    seen: dict[int, int] = {}
    keep = []
    for i, c in enumerate(codes[np.asarray(rows, np.int64)].tolist()):
        if seen.get(c, 0) < cap:
            seen[c] = seen.get(c, 0) + 1
            keep.append(i)
    return np.asarray(keep, np.int64)


class RulePlan:
    """The rules in effect for one request, compiled against one catalog: each rule's target resolved
    once (a product's row, a category's code) and its handler looked up, grouped by stage."""

    def __init__(self, rules: list[Rule], catalog: CatalogView) -> None:
        self.catalog = catalog
        self.by_stage: dict[str, list[tuple[Rule, Action]]] = {s: [] for s in STAGES}
        for r in rules:
            a = ACTIONS[r.action]
            self.by_stage[a.stage].append((r, a))
        self.by_stage["place"].sort(key=lambda ra: ra[0].slot)  # lower slots first: pins never push each other off

    def __bool__(self) -> bool:
        return any(self.by_stage.values())

    def _row(self, r: Rule) -> int | None:
        return self.catalog.row_of.get(r.item_id) if r.item_id is not None else None

    def _hits(self, r: Rule, rows: np.ndarray) -> np.ndarray:
        """(N,) bool: which of ``rows`` the rule is about."""
        if r.item_id is not None:
            target = self._row(r)
            return rows == (-1 if target is None else target)
        return self.catalog.codes[rows] == self.catalog.code_of([r.category])[0]

    def excluded(self) -> np.ndarray:
        """The ``filter`` stage: rows to clear in the request's filter mask."""
        out = []
        for r, a in self.by_stage["filter"]:
            if r.category is not None:
                target = np.flatnonzero(self.catalog.codes == self.catalog.code_of([r.category])[0])
            else:
                row = self._row(r)
                target = np.array([] if row is None else [row], np.int64)
            out.append(a.handler(r, target))
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def move(self, rows: np.ndarray, effect: RuleEffect) -> np.ndarray:
        """The ``move`` stage: positions into ``rows`` in their new order (stable: rows no rule
        touches keep their order, and two boosted rows keep theirs)."""
        rows = np.asarray(rows, np.int64)
        key = np.arange(len(rows), dtype=np.float64)
        for r, a in self.by_stage["move"]:
            hit = self._hits(r, rows)
            a.handler(r, key, hit)
            effect.note(rows[hit].tolist(), r)
        return np.argsort(key, kind="stable")

    def place(self, rows: np.ndarray, allowed: Callable[[int], bool], effect: RuleEffect) -> np.ndarray:
        """The ``place`` stage: each placed product where its rule says, only when ``allowed(row)``
        (the request's filters, purchases and exclusions)."""
        out = [int(x) for x in rows]
        for r, a in self.by_stage["place"]:
            row = self._row(r)
            if row is None or not allowed(row):
                continue
            out = a.handler(r, out, row)
            effect.note([row], r)
        return np.asarray(out, np.int64)

    def apply(self, ranked: np.ndarray, scores: np.ndarray | None, *, depth: int, cap: int | None,
              allowed: Callable[[int], bool]) -> tuple[np.ndarray, np.ndarray | None, RuleEffect]:
        """``move`` -> ``cap`` (over the first ``depth`` ranked rows) -> ``place``: the listed rows, their
        scores (a placed product keeps its score if it was ranked, else NaN) and what each rule did.
        (``filter`` ran earlier, in the request's mask: ``excluded``.)"""
        effect = RuleEffect()
        ranked = np.asarray(ranked, np.int64)
        if self.by_stage["move"]:
            order = self.move(ranked, effect)
            ranked, scores = ranked[order], None if scores is None else scores[order]
        keep = diversify(ranked[:depth], self.catalog.codes, cap)
        listed, listed_scores = ranked[keep], None if scores is None else scores[keep]
        if self.by_stage["place"]:
            placed = self.place(listed, allowed, effect)
            if listed_scores is not None:
                score_of = dict(zip(listed.tolist(), listed_scores.tolist(), strict=True))
                listed_scores = np.array([score_of.get(r, np.nan) for r in placed.tolist()], np.float64)
            listed = placed
        return listed, listed_scores, effect
