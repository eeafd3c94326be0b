"""The relay's properties marshal to exactly pamqp's bytes, whatever the values."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.common import FieldValue

from domainflow.kit.amqp_wire import RelayProperties

short = st.none() | st.text(max_size=90)  # up to 255 bytes of UTF-8, and past it
values: st.SearchStrategy[Any] = st.text(max_size=300) | st.integers(-5, 300) | st.booleans()


@given(
    content_type=short,
    headers=st.none()
    | st.dictionaries(st.text(max_size=140), st.text(max_size=300), max_size=12)
    | st.dictionaries(st.text(max_size=20), values, max_size=12),
    delivery_mode=st.none() | st.integers(0, 300),
    priority=st.none() | st.integers(0, 9),
    correlation_id=short,
    message_id=short,
    message_type=short,
    app_id=short,
    reply_to=short,
    timestamp=st.none() | st.datetimes(timezones=st.just(dt.UTC)),
)
def test_the_direct_path_writes_pamqps_bytes(**fields: Any) -> None:
    try:
        expected = spec.Basic.Properties(**fields).marshal()
    except (TypeError, ValueError, OverflowError, struct.error):
        expected = None  # pamqp refuses it: so must the relay's path
    try:
        got = RelayProperties(**fields).marshal()
    except (TypeError, ValueError, OverflowError, struct.error):
        got = None
    assert got == expected


def test_a_relayed_events_properties_take_the_direct_path() -> None:
    headers: dict[str, FieldValue] = {
        "traceparent": "00-ab-cd-01",
        "ce-specversion": "1.0",
        "ce-id": "é1",
    }
    properties = RelayProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id="e1",
        correlation_id="req_1",
        message_type="domain.status_changed",
        app_id="api",
        headers=headers,
    )
    wire = properties.marshal()
    assert (
        wire
        == spec.Basic.Properties(
            **{s: getattr(properties, s) for s in properties.__slots__}
        ).marshal()
    )
    # Flags: content type, headers, delivery mode, correlation id, message id, type, app id.
    assert int.from_bytes(wire[:2], "big") == 0x8000 | 0x2000 | 0x1000 | 0x400 | 0x80 | 0x20 | 0x8
