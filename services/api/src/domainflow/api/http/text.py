"""What no text sent to the api may carry: NUL and lone surrogates (PostgreSQL stores neither),
and JSON nested deeper than any request of ours needs (decoding it recurses past Python's
limit: a RecursionError and a 500)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from domainflow.api.http.problems import ApiError

#: Deepest nesting of arrays and objects a body may have. Ours are a few levels deep
#: (`metadata` is an object of values); anything deeper is refused before it is decoded.
MAX_JSON_DEPTH = 32

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


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Do `raw`'s arrays and objects nest deeper than `limit`? Counts brackets outside
    strings, in one pass, without decoding (malformed JSON is the decoder's to refuse)."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


async def refuse_deep_nesting(request: Request[Any, Any, Any]) -> None:
    """Before a handler decodes its body: 400 `json_too_deep` past `MAX_JSON_DEPTH`."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if json_depth_exceeds(await request.body(), MAX_JSON_DEPTH):
        raise ApiError(
            400,
            "json_too_deep",
            f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} deep; "
            "send the flat object the operation documents.",
        )
