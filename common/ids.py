"""What an id may be, at import and through the admin API alike: an id becomes part of URLs, pages
and file names, so it holds no control character, quote, angle bracket or backslash, and it is at
most ``MAX_ID_LEN`` characters; a shopper id is a pseudonym, never an e-mail address (personal data
the service would then show in its console and logs)."""

from __future__ import annotations

import re

MAX_ID_LEN = 200
BAD_CHARS = r"[\x00-\x1f\x7f<>\"'`\\]"  # as a regex character class (pandas' str.contains takes it too)
ID_PATTERN = r"^[^\x00-\x1f\x7f<>\"'`\\]+$"  # the same rule as a JSON Schema pattern (the OpenAPI document)
EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_BAD, _EMAIL = re.compile(BAD_CHARS), re.compile(EMAIL)


def id_problem(value: str, name: str = "item_id") -> str | None:
    """Why ``value`` cannot be an id (None: it can)."""
    if not value.strip():
        return f"missing {name}"
    if len(value) > MAX_ID_LEN:
        return f"{name} longer than {MAX_ID_LEN} characters"
    if _BAD.search(value):
        return f"{name} holds a character ids may not (control characters, quotes, angle brackets, backslash)"
    if name == "user_id" and _EMAIL.match(value):
        return "user_id looks like an e-mail address: export a pseudonymous id"
    return None
