"""The AsyncAPI document of every event, generated from the contracts with FastStream."""

from __future__ import annotations

import inspect
import json
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitRouter
from faststream.specification import AsyncAPI

from domainflow.contracts import EVENT_TYPES, Event
from domainflow.contracts.topology import PUBLICATIONS, SUBSCRIPTIONS
from domainflow.kit.messaging import EVENTS, consumer_queue


def _documented(router: RabbitRouter, consumer: str, event_cls: type[Event]) -> None:
    """A subscriber that exists only to be described: the real consumers read the raw body
    (tolerantly), so FastStream cannot see their payload type."""

    async def never_called(event: Any) -> None:  # pragma: no cover - documentation only
        raise NotImplementedError

    never_called.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=event_cls)]
    )
    never_called.__annotations__ = {"event": event_cls, "return": None}
    never_called.__name__ = f"{consumer}_{event_cls.__name__}"
    never_called.__doc__ = event_cls.__doc__
    queue = consumer_queue(consumer, event_cls.TYPE)
    router.subscriber(queue, EVENTS, title=queue.name)(never_called)


def document(delivery_limit: int = 5) -> str:
    """The AsyncAPI 3.0 document as indented JSON (stable, so it can be committed)."""
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:5672/")
    for consumer, types in SUBSCRIPTIONS.items():
        router = RabbitRouter()
        for event_type in types:
            _documented(router, consumer, EVENT_TYPES[event_type])
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
