"""Opaque page cursors: the last row's id, tagged with what it pages over."""

import base64
from collections.abc import Sequence
from typing import Protocol, TypeVar

from domainflow.api.errors import ApiError


def encode_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        last_id = int(value)
        if tag != kind or not 0 <= last_id < 2**63:  # a bigint, or PostgreSQL would refuse it
            raise ValueError(tag)
        return last_id
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400,
            "invalid_cursor",
            "The cursor is not one this API gave out; use next_cursor from the previous page.",
        ) from None


class _Row(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Row)


def page(rows: Sequence[R], limit: int, kind: str) -> tuple[list[R], str | None, bool]:
    """Rows fetched with `limit + 1` -> (this page, the next page's cursor, whether more)."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    return kept, encode_cursor(kind, kept[-1].id) if more and kept else None, more
