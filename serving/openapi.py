"""The OpenAPI document tells the truth about the limits this server enforces.

Some limits are settings (``max_k``, ``max_offset``, ``max_history``, ``max_upload_bytes``) and the
category names are the served bundle's, so they are written into the generated document, not declared
in the route code; an upload must not be empty (a 422 otherwise). Everything else comes from the
pydantic models."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving.settings import ServingSettings


def _walk(node: Any, settings: ServingSettings, categories: list[str] | None) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            if "k" in props and props["k"].get("type") == "integer":
                props["k"]["maximum"] = settings.max_k
            if "offset" in props and props["offset"].get("type") == "integer":
                props["offset"]["maximum"] = settings.max_offset
            if "recent_item_ids" in props:
                props["recent_item_ids"]["maxItems"] = min(settings.max_history,
                                                           props["recent_item_ids"].get("maxItems", 10**9))
            for p in props.values():
                if isinstance(p, dict) and (p.get("format") == "binary" or "contentMediaType" in p):
                    p["minLength"], p["maxLength"] = 1, settings.max_upload_bytes
            if categories and "categories" in props:  # the served taxonomy: anything else is a 422
                _enum(props["categories"], categories)
            if categories and "category" in props and "contentMediaType" not in props["category"]:
                _enum(props["category"], categories)
        if node.get("in") == "query" and node.get("name") == "k":
            node.setdefault("schema", {})["maximum"] = settings.max_k
        if categories and node.get("in") == "query" and node.get("name") == "categories":
            _enum(node.setdefault("schema", {}), categories)
        for v in node.values():
            _walk(v, settings, categories)
    elif isinstance(node, list):
        for v in node:
            _walk(v, settings, categories)


def _enum(schema: dict, categories: list[str]) -> None:
    """Constrain every string inside ``schema`` (a string, an array of them, or a union) to ``categories``."""
    if schema.get("type") == "string":
        schema["enum"] = categories
    for key in ("items", "anyOf", "oneOf"):
        sub = schema.get(key)
        for s in sub if isinstance(sub, list) else [sub] if isinstance(sub, dict) else []:
            _enum(s, categories)


def install_openapi(app: FastAPI, settings: ServingSettings) -> None:
    """Replace ``app.openapi`` with the generated document plus the settings' limits and the served
    bundle's categories (rebuilt when the bundle changes: a new taxonomy is a new document)."""
    cache: dict[str | None, dict] = {}

    def openapi() -> dict:
        b = app.state.service.bundle
        version = b.version if b is not None else None
        if version not in cache:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _walk(doc, settings, list(b.catalog.category_names) if b is not None else None)
            cache.clear()
            cache[version] = doc
        return cache[version]

    app.openapi = openapi
