"""Merchandising rules: pin a product to a slot, boost or bury a product or a category, exclude
products or a category; everywhere or on one category's page, between a start and an end time.

Applied in the business-rules stage of every recommendation (``serving/recommend.py::_finish``),
after the ranker, in a fixed order a merchandiser can predict:

    exclude -> boost / bury (move matching items up / down by ``positions`` places) -> category cap
    -> pins (the pinned product at its slot, if the request's filters allow it)

Rules are stored in ``ARTIFACTS/merch/rules.jsonl`` (serving/merch_store.py) and outlive bundles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["pin", "boost", "bury", "exclude"]


class Rule(BaseModel):
    """One merchandising rule. Target: exactly one of ``item_id`` / ``category`` (a pin takes an item)."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                description="Assigned by the server when omitted; saving the same id replaces it.")
    action: Action
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
        if (self.item_id is None) == (self.category is None):
            raise ValueError("give exactly one of item_id or category")
        if self.action == "pin" and (self.item_id is None or self.slot is None):
            raise ValueError("a pin needs an item_id and a slot")
        if self.action != "pin" and self.slot is not None:
            raise ValueError(f"slot is for pins, not {self.action}")
        if self.starts_at and self.ends_at and _utc(self.ends_at) <= _utc(self.starts_at):
            raise ValueError(f"ends_at {self.ends_at} is not after starts_at {self.starts_at}")
        return self

    def active(self, now: datetime) -> bool:
        started = self.starts_at is None or _utc(self.starts_at) <= now
        return started and (self.ends_at is None or now < _utc(self.ends_at))


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@dataclass
class RuleEffect:
    """What the rules did to one ranked list: rows removed, and the rule ids behind each kept row."""

    by_row: dict[int, list[str]] = field(default_factory=dict)
    excluded: int = 0


class RuleSet:
    """The rules in effect, compiled against one bundle's catalog for the request path."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = list(rules)

    def __len__(self) -> int:
        return len(self.rules)

    def for_request(self, now: datetime, page_category: str | None) -> list[Rule]:
        """Rules active at ``now`` whose scope is everywhere or this request's category page."""
        return [r for r in self.rules if r.active(now) and (r.scope is None or r.scope == page_category)]


def page_category(categories: list[str] | None) -> str | None:
    """A request filtered to exactly one category is that category's page."""
    return categories[0] if categories is not None and len(categories) == 1 else None


def _matches(r: Rule, rows: np.ndarray, row_of: dict | None, category: np.ndarray) -> np.ndarray:
    """(N,) bool: which of ``rows`` the rule is about."""
    if r.item_id is not None:
        target = row_of.get(r.item_id) if row_of is not None else None
        return rows == (-1 if target is None else target)
    return category[rows] == r.category


def apply_ranking_rules(rules: list[Rule], rows: np.ndarray, row_of, category: np.ndarray,
                        effect: RuleEffect) -> np.ndarray:
    """Exclude, then boost / bury: each matching row's sort key moves by ``positions`` (stable, so
    rows no rule touches keep their order, and two boosted rows keep theirs)."""
    rows = np.asarray(rows, np.int64)
    if not rules or not len(rows):
        return rows
    for r in (r for r in rules if r.action == "exclude"):
        hit = _matches(r, rows, row_of, category)
        effect.excluded += int(hit.sum())
        rows = rows[~hit]
    key = np.arange(len(rows), dtype=np.float64)
    for r in (r for r in rules if r.action in ("boost", "bury")):
        hit = _matches(r, rows, row_of, category)
        key[hit] += -r.positions if r.action == "boost" else r.positions
        for row in rows[hit].tolist():
            effect.by_row.setdefault(row, []).append(r.rule_id or r.action)
    return rows[np.argsort(key, kind="stable")]


def is_excluded(rules: list[Rule], row: int, row_of, category: np.ndarray) -> bool:
    """Whether an exclude rule removes ``row`` (a pin never brings an excluded product back)."""
    return any(bool(_matches(r, np.array([row]), row_of, category)[0]) for r in rules if r.action == "exclude")


def apply_pins(rules: list[Rule], rows: np.ndarray, row_of, allowed, effect: RuleEffect) -> np.ndarray:
    """Each pinned product at its slot (1-based), moved there if ranked elsewhere, inserted if not;
    only when ``allowed(row)`` (the request's filters, purchases and exclusions). Lower slots first,
    so two pins never push each other off their slots; a slot past the list's end appends."""
    pins = sorted((r for r in rules if r.action == "pin"), key=lambda r: r.slot)
    out = [int(x) for x in rows]
    for r in pins:
        row = row_of.get(r.item_id)
        if row is None or not allowed(row):
            continue
        if row in out:
            out.remove(row)
        out.insert(min(r.slot - 1, len(out)), row)
        effect.by_row.setdefault(row, []).append(r.rule_id or "pin")
    return np.asarray(out, np.int64)
