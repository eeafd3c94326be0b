"""What no text sent to the api may carry: NUL and lone surrogates (PostgreSQL stores neither)."""

from __future__ import annotations

import re
from typing import Any

from domainflow.api.http.problems import ApiError

# NUL is refused by PostgreSQL's text and jsonb; a lone surrogate is not encodable as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _carries_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_carries_unstorable(k) or _carries_unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_carries_unstorable(v) for v in value)
    return False


def refuse_unstorable_in_url(path_params: dict[str, Any], query: dict[str, list[str]]) -> None:
    """No id carries such characters, so the id names nothing (404); a query value is a 400."""
    for value in path_params.values():
        if _carries_unstorable(value):
            raise ApiError(404, "not_found", "Nothing here has an id with a NUL character.")
    for name, values in query.items():
        refuse_unstorable(name, values)


def refuse_unstorable(field: str, value: Any) -> None:
    """400 `invalid_characters` when `value` (a string, or JSON within) cannot be stored."""
    if _carries_unstorable(value):
        raise ApiError(
            400,
            "invalid_characters",
            f"{field} carries a NUL character or an unpaired UTF-16 surrogate; "
            "send valid Unicode text without NUL.",
            param=field,
        )
