"""Merchandising rules: pin a product to a slot, boost or bury a product or a category, exclude
products or a category; everywhere or on one category's page, between a start and an end time.

Applied in the business-rules stage of every recommendation (``serving/recommend.py::_finish``),
after the ranker, in a fixed order a merchandiser can predict:

    exclude (in the request's filter mask, so retrieval and the popular fallback refill the page)
    -> boost / bury (move matching items up / down by ``positions`` places) -> category cap
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
    """What the rules did to one ranked list: the rule ids behind each row they moved or placed."""

    by_row: dict[int, list[str]] = field(default_factory=dict)


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


def excluded_rows(rules: list[Rule], row_of, category_code: np.ndarray, encode) -> np.ndarray:
    """Rows the exclude rules remove: cleared in the request's filter mask (``filter_mask``), so the
    index search and the popular fallback refill the page, and no pin can bring them back.
    ``category_code``: (I,) each row's category code; ``encode``: category names -> codes."""
    out = []
    for r in (r for r in rules if r.action == "exclude"):
        if r.category is not None:
            out.append(np.flatnonzero(category_code == encode([r.category])[0]))
        elif r.item_id in row_of:
            out.append(np.array([row_of.get(r.item_id)], np.int64))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def apply_ranking_rules(rules: list[Rule], rows: np.ndarray, row_of, category: np.ndarray,
                        effect: RuleEffect) -> np.ndarray:
    """Boost / bury: each matching row's sort key moves by ``positions`` (stable, so rows no rule
    touches keep their order, and two boosted rows keep theirs). Returns positions into ``rows``."""
    rows = np.asarray(rows, np.int64)
    key = np.arange(len(rows), dtype=np.float64)
    for r in (r for r in rules if r.action in ("boost", "bury")):
        hit = _matches(r, rows, row_of, category)
        key[hit] += -r.positions if r.action == "boost" else r.positions
        for row in rows[hit].tolist():
            effect.by_row.setdefault(row, []).append(r.rule_id or r.action)
    return np.argsort(key, kind="stable")


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
