"""Pages of a listing and their opaque cursors: the last row's id, tagged with what it pages."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from domainflow.api.domain.errors import InvalidCursor

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    has_more: bool


def encode_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The row id a cursor of `kind` continues after, or `InvalidCursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        last_id = int(value)
        if tag != kind or not 0 <= last_id < 2**63:  # a bigint, or PostgreSQL would refuse it
            raise ValueError(tag)
        return last_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None


def encode_key_cursor(kind: str, key: str) -> str:
    """A cursor that continues after a row named by its public id (which the client holds
    already): it tells nothing of row ids or counts."""
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_key_cursor(kind: str, cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    tag, _, key = raw.partition(":")
    if tag != kind or not 0 < len(key) <= 64 or not key.isascii() or not key.isprintable():
        raise InvalidCursor()
    return key


def page(rows: Sequence[T], limit: int, kind: str, key: Callable[[T], int]) -> Page[T]:
    """Rows fetched with `limit + 1` -> this page, the next page's cursor, whether more."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    cursor = encode_cursor(kind, key(kept[-1])) if more and kept else None
    return Page(kept, cursor, more)


def keyed_page(rows: Sequence[T], limit: int, kind: str, key: Callable[[T], str]) -> Page[T]:
    """As `page`, with a cursor of the last row's public id."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    cursor = encode_key_cursor(kind, key(kept[-1])) if more and kept else None
    return Page(kept, cursor, more)
