"""Events on the wire: UTF-8 JSON of the flat envelope, read tolerantly, decoded by its `type`.

A reader ignores fields it does not know (an additive change keeps the version) and
refuses, with a reason code, what it cannot read: a body that is not JSON, an event of a
version newer than it knows, a payload that does not validate. The code is what an
operator sees beside the parked message.
"""

import json
from typing import Any

from aio_pika.abc import FieldValue
from pydantic import ValidationError

from domainflow.contracts import EVENT_TYPES, Event


class UndecodableEventError(ValueError):
    """A message no handler can be given; `code` says why in one word."""

    code = "undecodable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotJsonError(UndecodableEventError):
    code = "not_json"


class UnknownEventTypeError(UndecodableEventError):
    code = "unknown_type"


class UnknownVersionError(UndecodableEventError):
    code = "unknown_version"


class InvalidEventError(UndecodableEventError):
    code = "invalid_event"


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


#: The CloudEvents 1.0 AMQP binding's prefix for context attributes carried as headers.
CLOUD_EVENTS_PREFIX = "cloudEvents:"


def schema_uri(event_type: str, version: int) -> str:
    """Names an event's JSON schema (the one under `docs/schemas/`) for `dataschema`."""
    return f"urn:domainflow:schema:{event_type}:v{version}"


def cloud_event_headers(
    service: str, event_type: str, fields: dict[str, Any]
) -> dict[str, FieldValue]:
    """CloudEvents attributes for an event's flat JSON fields, as AMQP headers (binary mode:
    the body stays the event itself, so existing subscribers read it as before)."""
    version = fields.get("version", 1)
    attributes = {
        "specversion": "1.0",
        "id": str(fields.get("event_id", "")),
        "source": f"/domainflow/{service}",
        "type": event_type,
        "time": str(fields.get("occurred_at", "")),
        "datacontenttype": "application/json",
        "dataschema": schema_uri(event_type, version if isinstance(version, int) else 1),
    }
    domain_id = fields.get("domain_id")
    if isinstance(domain_id, str):
        attributes["subject"] = domain_id
    return {f"{CLOUD_EVENTS_PREFIX}{name}": value for name, value in attributes.items()}


def _object(body: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(body)
    except ValueError as error:  # UnicodeDecodeError is one too
        raise NotJsonError(f"the body is not UTF-8 JSON: {error}") from None
    if not isinstance(raw, dict):
        raise NotJsonError(f"the body is JSON but not an object: {type(raw).__name__}")
    return raw


def decode_as(cls: type[Event], body: bytes) -> Event:
    """Read `body` as a `cls` event, ignoring fields this code does not know."""
    raw = _object(body)
    if raw.get("type") != cls.TYPE:
        raise UnknownEventTypeError(f"expected type {cls.TYPE!r}, got {raw.get('type')!r}")
    version = raw.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > cls.VERSION:
        raise UnknownVersionError(
            f"{cls.TYPE} version {version} is newer than this reader knows"
            f" (up to {cls.VERSION}): deploy the consumer that reads it, then replay"
        )
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidEventError(f"{cls.TYPE} does not validate: {problems}") from None


def decode(body: bytes) -> Event:
    """Read any known event by its `type`."""
    raw_type = _object(body).get("type", "")
    cls = EVENT_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if cls is None:
        raise UnknownEventTypeError(f"no event type {raw_type!r}")
    return decode_as(cls, body)
