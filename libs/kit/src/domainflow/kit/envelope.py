"""Events on the wire: UTF-8 JSON of the flat envelope, decoded by its `type`."""

import json

from domainflow.contracts import EVENT_TYPES, Event


class UnknownEventTypeError(ValueError):
    pass


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(body: bytes) -> Event:
    raw = json.loads(body)
    cls = EVENT_TYPES.get(raw.get("type", ""))
    if cls is None:
        raise UnknownEventTypeError(f"no event type {raw.get('type')!r}")
    return cls.model_validate(raw)
