"""Readers tolerate what a newer writer adds; a build never breaks the last release's readers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from faststream.rabbit import RabbitRouter
from hypothesis import given
from hypothesis import strategies as st

from domainflow.contracts import DomainDeleted, DomainStatusChanged
from domainflow.kit.envelope import (
    InvalidEventError,
    NotJsonError,
    UnknownEventTypeError,
    UnknownVersionError,
    decode,
    decode_as,
    encode,
)
from domainflow.kit.messaging import SubscriptionMismatchError, subscribe_all
from domainflow.kit.schemas import broken_fields, event_schemas

ROOT = Path(__file__).resolve().parents[3]
RELEASED = ROOT / "docs" / "schemas"


def _deleted() -> dict[str, Any]:
    event = DomainDeleted(correlation_id="req", team_id="t", domain_id="d1", domain="x.example")
    raw: dict[str, Any] = json.loads(encode(event))
    return raw


@given(
    name=st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True),
    value=st.one_of(st.integers(), st.text(), st.booleans(), st.none()),
)
def test_a_field_a_newer_writer_added_is_ignored(name: str, value: object) -> None:
    written = _deleted()
    if name in written:
        return
    event = decode(json.dumps({**written, name: value}).encode())
    assert event == DomainDeleted.model_validate(written)


def test_a_nested_added_field_is_ignored_too() -> None:
    event = DomainStatusChanged(
        correlation_id="r", team_id="t", domain_id="d", domain="x.example", region="us-east-1",
        old_status=None, new_status="pending", reason="created",
    )  # fmt: skip
    raw = json.loads(encode(event))
    raw["checks"] = [{"record": "mx", "outcome": "pass", "name": "x", "expected": "y", "new": 1}]
    assert decode(json.dumps(raw).encode()).checks[0].name == "x"  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [2, 17])
def test_a_version_newer_than_the_reader_knows_is_refused_by_name(version: int) -> None:
    raw = {**_deleted(), "version": version}
    with pytest.raises(UnknownVersionError, match=f"version {version}") as refusal:
        decode_as(DomainDeleted, json.dumps(raw).encode())
    assert refusal.value.code == "unknown_version"


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (b"{not json", NotJsonError, "not_json"),
        (b"\xff\xfe", NotJsonError, "not_json"),
        (b"[1, 2]", NotJsonError, "not_json"),
        (b'{"type": "domain.exploded"}', UnknownEventTypeError, "unknown_type"),
        (b'{"type": "domain.deleted", "version": 1}', InvalidEventError, "invalid_event"),
    ],
)
def test_what_cannot_be_read_says_why(body: bytes, error: type[Exception], code: str) -> None:
    with pytest.raises(error) as refusal:
        decode(body)
    assert refusal.value.code == code  # type: ignore[attr-defined]


def test_every_event_this_build_writes_has_a_released_schema() -> None:
    missing = sorted(set(event_schemas()) - {p.stem for p in RELEASED.glob("*.json")})
    assert missing == [], "a new event or version: commit its schema with write_snapshots"


@pytest.mark.parametrize("released", sorted(RELEASED.glob("*.json")), ids=lambda p: p.stem)
def test_no_released_required_field_is_removed_or_renamed(released: Path) -> None:
    current = event_schemas().get(released.stem)
    # A released version no longer written would break its readers unless a newer one is
    # published beside it for the documented window; this build must still write it.
    assert current is not None, f"{released.stem} is no longer written"
    assert broken_fields(json.loads(released.read_text(encoding="utf-8")), current) == []


def test_the_check_catches_a_removed_a_renamed_and_a_loosened_field() -> None:
    released = event_schemas()["domain.status_changed.v1"]
    renamed = copy.deepcopy(released)
    renamed["properties"]["domain_name"] = renamed["properties"].pop("domain")
    renamed["required"] = [("domain_name" if f == "domain" else f) for f in renamed["required"]]
    nested = copy.deepcopy(released)
    del nested["$defs"]["RecordCheck"]["properties"]["expected"]
    loosened = copy.deepcopy(released)
    loosened["required"].remove("reason")
    assert broken_fields(released, renamed) == [
        "(event): required field 'domain' was removed or renamed"
    ]
    assert broken_fields(released, nested) == [
        "$defs/RecordCheck: required field 'expected' was removed or renamed"
    ]
    assert broken_fields(released, loosened) == ["(event): field 'reason' is no longer required"]
    assert broken_fields(released, released) == []


def test_a_service_whose_handlers_disagree_with_the_table_does_not_start() -> None:
    async def handle(event: object) -> None:
        raise AssertionError("never called")

    with pytest.raises(SubscriptionMismatchError, match=r"notification\.requested"):
        subscribe_all(RabbitRouter(), "notifier", {"domain.deleted": handle})
    with pytest.raises(SubscriptionMismatchError):
        subscribe_all(
            RabbitRouter(),
            "notifier",
            {"notification.requested": handle, "domain.deleted": handle},
        )
    queues = subscribe_all(RabbitRouter(), "notifier", {"notification.requested": handle})
    assert [q.name for q in queues] == ["notifier.notification-requested"]
