"""What one DNS lookup can say, as the DoH adapter reports it and the pure rules read it.

`ttl` is carried but never compared: two answers with the same records are the same answer
whatever time is left on them. On a negative answer it is the negative-caching time the
answer's SOA allows (RFC 2308 §5), when the resolver sent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Found:
    """NOERROR with records of the asked type (CNAMEs followed): each rdata as text.

    A TXT record is the concatenation of all its character-strings, decoded (`txt_text`).
    `alias` is the first CNAME target when the name itself is an alias.
    """

    records: tuple[str, ...]
    ttl: int | None = field(default=None, compare=False)
    alias: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class NxDomain:
    """The name does not exist."""

    ttl: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class NoData:
    """The name exists (NOERROR) but has no record of the asked type."""

    ttl: int | None = field(default=None, compare=False)
    alias: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Unavailable:
    """No trustworthy answer: timeout, SERVFAIL, REFUSED, connection error, bad HTTP status."""

    reason: str


LookupResult = Found | NxDomain | NoData | Unavailable
