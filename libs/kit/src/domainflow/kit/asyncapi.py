"""The AsyncAPI document of every event, generated from the contracts with FastStream."""

from __future__ import annotations

import json
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitRouter
from faststream.specification import AsyncAPI

from domainflow.contracts import EVENT_TYPES, Event
from domainflow.contracts.topology import PUBLICATIONS, SUBSCRIPTIONS
from domainflow.kit.messaging import EVENTS, Redelivery, subscribe


async def _never_called(event: Event) -> None:  # pragma: no cover - documentation only
    raise NotImplementedError


def document(delivery_limit: int = 5) -> str:
    """The AsyncAPI 3.0 document as indented JSON (stable, so it can be committed)."""
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:5672/")
    for consumer, types in SUBSCRIPTIONS.items():
        router = RabbitRouter()
        for event_type in types:
            subscribe(
                router,
                consumer,
                EVENT_TYPES[event_type],
                _never_called,
                redelivery=Redelivery(limit=delivery_limit),
            )
        broker.include_router(router)
    for publisher, types in PUBLICATIONS.items():
        for event_type in types:
            cls = EVENT_TYPES[event_type]
            broker.publisher(
                exchange=EVENTS,
                routing_key=event_type,
                title=f"{publisher}:{event_type}",
                description=cls.__doc__,
                schema=cls,
            )
    spec: Any = AsyncAPI(
        broker,
        title="domainflow events",
        version="1.0.0",
        description=(
            "Domain events on the `domainflow.events` topic exchange; the routing key is the "
            "event's `type`. Every event carries the envelope: event_id, type, version, "
            "occurred_at, correlation_id (the HTTP request id), causation_id, team_id."
        ),
    )
    return json.dumps(spec.to_specification().to_jsonable(), indent=2, sort_keys=True)
