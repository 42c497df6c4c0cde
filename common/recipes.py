"""Recipes: the frozen dataclasses of hyperparameters every training run, the nightly job and the
CLI read from YAML, checked when they load (torch-free: the nightly config is read before anything
trains, on a host that may have no torch).

A recipe is checked whole, nested recipes included, by pydantic against the dataclasses' own
annotations: an unknown key or a value of the wrong type is one line naming its path
(``two_tower.epochz: unknown key``) and nothing runs."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

C = TypeVar("C")


# Every recipe dataclass declares ``__pydantic_config__ = STRICT``: an unknown key is an error at
# load, never a silently ignored typo.
STRICT = ConfigDict(extra="forbid")


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _where(err: dict) -> str:
    return ".".join(str(p) for p in err["loc"]) or "(top level)"


def _message(err: dict) -> str:
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return "unknown key"
    return err["msg"]


def from_mapping(cls: type[C], values: dict[str, Any] | None, source: str = "recipe") -> C:
    """``cls`` (a dataclass, possibly holding others) built from plain values; ValueError with one
    line naming ``source`` and the first bad key otherwise."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
    try:
        return _adapter(cls).validate_python(values)
    except ValidationError as e:
        errs = e.errors(include_url=False)
        first = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ValueError(f"{source}: {_where(first)}: {_message(first)}{more}") from None


def load_recipe(cls: type[C], path: Path | None, **overrides: Any) -> C:
    """A recipe from a YAML file plus the non-None ``overrides``; unknown keys and wrong types are an error."""
    try:
        d = yaml.safe_load(Path(path).read_text()) if path else {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    d = dict(d or {}) if isinstance(d, dict) or d is None else d
    if isinstance(d, dict):
        d.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(cls, d, str(path) if path else cls.__name__)


def plain(recipe: Any) -> dict:
    """A recipe as JSON- and YAML-safe values (tuples become lists): what is written beside a run."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def fields_of(cls: type, recipe: Any) -> dict[str, Any]:
    """The values of ``recipe`` for the fields ``cls`` declares (a recipe's share of a larger one)."""
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(cls)}
