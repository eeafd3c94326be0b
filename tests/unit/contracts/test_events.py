"""The contracts: every event round-trips through the wire format and names its topology."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.contracts import EVENT_TYPES, DomainRequested, Event
from domainflow.contracts.topology import PUBLICATIONS, SUBSCRIPTIONS, queue_name
from domainflow.kit.asyncapi import document
from domainflow.kit.envelope import UnknownEventTypeError, decode, encode

ROOT = Path(__file__).resolve().parents[3]


def test_every_event_type_is_published_by_exactly_one_service() -> None:
    publishers = [t for types in PUBLICATIONS.values() for t in types]
    assert sorted(publishers) == sorted(EVENT_TYPES)


def test_every_subscription_names_a_known_event() -> None:
    for types in SUBSCRIPTIONS.values():
        assert set(types) <= set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_type_field_matches_the_routing_key(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    assert cls.model_fields["type"].default == event_type == cls.TYPE


@given(
    domain=st.from_regex(r"[a-z]{1,20}\.[a-z]{2,6}", fullmatch=True),
    team=st.text(min_size=1, max_size=30),
    request_id=st.text(min_size=1, max_size=60),
)
def test_an_event_survives_the_wire(domain: str, team: str, request_id: str) -> None:
    event = DomainRequested(
        correlation_id=request_id,
        team_id=team,
        domain_id="mdom_x",
        domain=domain,
        region="eu-west-1",
        causation_id=uuid.uuid4(),
    )
    again = decode(encode(event))
    assert again == event
    assert isinstance(again, Event)


def test_an_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"domain\.exploded"):
        decode(b'{"type": "domain.exploded"}')


def test_queue_names_read_as_consumer_and_event() -> None:
    assert queue_name("provisioner", "domain.requested") == "provisioner.domain-requested"
    assert (
        queue_name("api", "domain.provisioning_rolled_back")
        == "api.domain-provisioning-rolled-back"
    )


def test_the_committed_asyncapi_document_is_current() -> None:
    committed = (ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8")
    assert committed.strip() == document().strip(), "run `make asyncapi` and commit the result"
