"""Checking captured messages against the AsyncAPI document: a message's payload and headers
against the schemas its component names, references resolved inside the document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:domainflow:asyncapi"


def _validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"}, registry=registry, format_checker=FormatChecker()
    )


def problems(doc: dict[str, Any], pointer: str, instance: Any) -> list[str]:
    """What of `instance` the schema at `pointer` in `doc` refuses (empty: it validates)."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(doc, pointer).iter_errors(instance)
    ]


def message_key(doc: dict[str, Any], event_type: str) -> str:
    """The component key of the message named `event_type` (exactly one per type)."""
    [key] = [k for k, m in doc["components"]["messages"].items() if m["name"] == event_type]
    return str(key)


def wire_problems(
    doc: dict[str, Any], routing_key: str, body: Any, headers: dict[str, Any]
) -> list[str]:
    """A captured message against its message component: payload and headers."""
    pointer = f"/components/messages/{message_key(doc, routing_key)}"
    return [
        *(f"payload {p}" for p in problems(doc, pointer + "/payload", body)),
        *(f"headers {p}" for p in problems(doc, pointer + "/headers", headers)),
    ]
