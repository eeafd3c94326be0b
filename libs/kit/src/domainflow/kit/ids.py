"""Public ids for everything a service names (`mdom_…`, `req_…`, `team_…`): one generator.

The form is cuid2's (a letter, then lowercase base-36, 24 characters in all), so ids issued
before and after read alike, but drawn straight from the OS's random bytes: cuid2's hashing
cost more than the rest of a cached read of a domain, and so did base-36 long division of a
128-bit number (every request gets an id).

Each character is one random byte mapped through a table (`byte % 36`, `byte % 26` for the
leading letter). 256 is not a multiple of 36, so four characters are drawn 8 times in 256 and
the rest 7: 5.169 bits a character against a perfect draw's 5.170, about 123 bits an id.
"""

from __future__ import annotations

import os
import string
from typing import Final

_FIRST: Final = string.ascii_lowercase
_REST: Final = string.ascii_lowercase + string.digits
LENGTH: Final = 24

_TO_FIRST: Final = bytes(ord(_FIRST[b % len(_FIRST)]) for b in range(256))
_TO_REST: Final = bytes(ord(_REST[b % len(_REST)]) for b in range(256))


def new_id(prefix: str = "") -> str:
    """`prefix` + `_` + a fresh random id, or the bare id when `prefix` is empty."""
    drawn = os.urandom(LENGTH)
    body = (drawn[:1].translate(_TO_FIRST) + drawn[1:].translate(_TO_REST)).decode("ascii")
    return f"{prefix}_{body}" if prefix else body
