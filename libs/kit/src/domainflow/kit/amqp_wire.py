"""AMQP message properties as the relay sends them, marshalled without pamqp's generic path.

Every relayed event carries a dozen properties and CloudEvents headers, all strings but the
delivery mode. pamqp encodes each through a chain of type checks, which costs the relay more
per event than claiming, publishing and settling it together. `RelayProperties` writes the
same bytes directly (tests compare the two, byte for byte, over generated values) and hands
anything it was not written for (a timestamp, a header that is not text, an over-long
string) to pamqp as before.
"""

from __future__ import annotations

from typing import Any, Final

from pamqp import commands as spec

#: Each property with its flag bit, in the order the frame carries them (pamqp's slots).
_ORDER: Final = tuple(
    (name, spec.Basic.Properties.flags[name]) for name in spec.Basic.Properties.__slots__
)
_OCTETS: Final = frozenset({"delivery_mode", "priority"})
_SHORT_MAX: Final = 255
_KEY_MAX: Final = 128  # pamqp truncates a longer field name; that case goes to pamqp


class _NotPlainError(Exception):
    """A value this path was not written for: pamqp encodes it."""


def _short(value: object, limit: int = _SHORT_MAX) -> bytes:
    if not isinstance(value, str):
        raise _NotPlainError
    data = value.encode()
    if len(data) > limit:
        raise _NotPlainError
    return bytes((len(data),)) + data


def _table(value: object) -> bytes:
    if not isinstance(value, dict):
        raise _NotPlainError
    entries = []
    for key, item in sorted(value.items()):
        if not isinstance(item, str):
            raise _NotPlainError
        data = item.encode()
        entries.append(_short(key, _KEY_MAX) + b"S" + len(data).to_bytes(4, "big") + data)
    body = b"".join(entries)
    return len(body).to_bytes(4, "big") + body


def _octet(value: object) -> bytes:
    if type(value) is not int or not 0 <= value <= _SHORT_MAX:
        raise _NotPlainError
    return bytes((value,))


class RelayProperties(spec.Basic.Properties):
    """`spec.Basic.Properties` whose `marshal` takes the direct path when it can."""

    def marshal(self) -> bytes:
        try:
            return _marshal(self)
        except _NotPlainError:
            return super().marshal()


def _marshal(properties: Any) -> bytes:
    flags = 0
    parts = []
    for name, bit in _ORDER:
        value = getattr(properties, name)
        if value is None or value == "":
            continue
        flags |= bit
        if name == "headers":
            parts.append(_table(value))
        elif name in _OCTETS:
            parts.append(_octet(value))
        elif name == "timestamp":
            raise _NotPlainError
        else:
            parts.append(_short(value))
    return flags.to_bytes(2, "big") + b"".join(parts)
