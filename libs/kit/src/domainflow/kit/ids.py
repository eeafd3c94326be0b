"""Public ids for everything a service names (`mdom_…`, `req_…`, `team_…`): one generator.

The form is cuid2's (a letter, then lowercase base-36, 24 characters in all: ~119 bits),
so ids issued before and after read alike, but drawn straight from `secrets`: cuid2's
hashing cost more than the rest of a cached read of a domain.
"""

from __future__ import annotations

import secrets
import string
from typing import Final

_FIRST: Final = string.ascii_lowercase
_REST: Final = string.ascii_lowercase + string.digits
LENGTH: Final = 24


def new_id(prefix: str = "") -> str:
    """`prefix` + `_` + a fresh random id, or the bare id when `prefix` is empty."""
    number = int.from_bytes(secrets.token_bytes(16), "big")  # 128 random bits
    digits = [_FIRST[number % 26]]
    number //= 26
    for _ in range(LENGTH - 1):  # 2**128 is ~20 x 26 * 36**23: each character near-uniform
        number, digit = divmod(number, 36)
        digits.append(_REST[digit])
    body = "".join(digits)
    return f"{prefix}_{body}" if prefix else body
