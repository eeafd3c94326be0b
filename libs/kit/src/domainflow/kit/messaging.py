"""RabbitMQ topology and consumers: durable quorum queues, bounded redelivery, a DLQ each.

Every consumer queue is bound to the events topic exchange by the event's type, dead-letters
into `domainflow.dead-letter` after `delivery_limit` deliveries, and has a visible
`<queue>.dlq` there. A failing handler is retried with growing pauses, never dropped
(FastStream's default would drop it: we nack explicitly). A handler that failed because a
server is away (PostgreSQL restarting) is retried in place until it is back: the outage is
not the message's fault and must not use up its deliveries.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from faststream import AckPolicy
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
    RabbitRouter,
)
from faststream.rabbit.schemas.queue import QuorumQueueArgs

from domainflow.contracts import Event
from domainflow.contracts.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    dead_letter_queue_name,
    queue_name,
)
from domainflow.kit.failover import fail_over, node_list
from domainflow.kit.logging import bind_context, clear_context, get_logger
from domainflow.kit.outages import through_outages
from domainflow.kit.settings import ServiceSettings

log = get_logger(__name__)

EVENTS = RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
#: The queue argument naming how many cluster nodes hold a copy of a quorum queue.
QUORUM_REPLICAS: Final = "x-quorum-initial-group-size"
DEAD_LETTERS = RabbitExchange(DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True)

E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]


def broker_for(
    amqp_url: str | Sequence[str], *, prefetch: int, graceful_timeout: float = 10.0
) -> RabbitBroker:
    """The broker a service replica uses: each of its consumers holds at most `prefetch`
    unacknowledged messages. Every delivery is handled as a task of its own, so without the
    bound one replica would take a whole backlog at once (all of it in flight against SES
    and the database pool, none of it left for the other replicas). Given a cluster's node
    URLs, it connects to whichever answers and fails over between them."""
    urls = node_list(amqp_url)
    broker = RabbitBroker(
        urls[0],
        logger=None,
        graceful_timeout=graceful_timeout,
        default_channel=Channel(prefetch_count=prefetch),
    )
    return fail_over(broker, urls)


def consumer_queue(
    consumer: str, event_type: str, *, delivery_limit: int, replicas: int | None = None
) -> RabbitQueue:
    name = queue_name(consumer, event_type)
    arguments: QuorumQueueArgs = {
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": name,
        "x-delivery-limit": delivery_limit,
    }
    if replicas is not None:
        arguments["x-quorum-initial-group-size"] = replicas
    return RabbitQueue(
        name, queue_type=QueueType.QUORUM, durable=True, routing_key=event_type, arguments=arguments
    )


def _backoff(delivery_count: int, ceiling: float) -> float:
    return float(min(ceiling, 0.25 * 2**delivery_count))


@dataclass(frozen=True)
class Redelivery:
    """How a consumer retries an event whose handler failed."""

    #: Deliveries before the event is parked in its queue's DLQ.
    limit: int = 5
    #: Longest pause before a failed event is handed back for redelivery, in seconds.
    backoff_max: float = 30.0
    #: Seconds a handler failing on an outage is retried in place before the event is
    #: handed back (and counts against `limit`).
    outage_patience: float = 300.0
    #: Cluster nodes holding a copy of the queue, so a redelivery outlives a lost node
    #: (`None`: RabbitMQ's default).
    replicas: int | None = None

    @classmethod
    def of(cls, settings: ServiceSettings) -> Redelivery:
        return cls(
            limit=settings.delivery_limit,
            backoff_max=settings.redelivery_backoff_max,
            outage_patience=settings.outage_patience,
            replicas=settings.quorum_replicas or None,
        )


DEFAULT_REDELIVERY = Redelivery()


def subscribe(
    router: RabbitRouter,
    consumer: str,
    event_cls: type[E],
    handler: Handler[E],
    *,
    redelivery: Redelivery = DEFAULT_REDELIVERY,
) -> RabbitQueue:
    """Register `handler` for `event_cls` on `consumer`'s queue; returns the queue."""
    queue = consumer_queue(
        consumer, event_cls.TYPE, delivery_limit=redelivery.limit, replicas=redelivery.replicas
    )

    async def consume(event: Any, message: RabbitMessage) -> None:
        clear_context()
        bind_context(
            service=consumer,
            correlation_id=event.correlation_id,
            event_id=str(event.event_id),
            event_type=event.TYPE,
        )
        try:
            await through_outages(
                "a server the handler needs", lambda: handler(event),
                within=redelivery.outage_patience,
            )  # fmt: skip
        except Exception:
            raw_headers = message.raw_message.headers or {}
            count_raw = raw_headers.get("x-delivery-count", 0)
            count = count_raw if isinstance(count_raw, int) else 0
            pause = _backoff(count, redelivery.backoff_max)
            log.exception("event.handler_failed", delivery_count=count, retry_in=pause)
            await asyncio.sleep(pause)
            raise  # nack: redelivered until the limit, then dead-lettered

    # FastStream reads the payload model from the signature; give it the concrete class.
    consume.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=event_cls
            ),
            inspect.Parameter(
                "message", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RabbitMessage
            ),
        ],
        return_annotation=None,
    )
    consume.__annotations__ = {"event": event_cls, "message": RabbitMessage, "return": None}
    consume.__name__ = f"{consumer}_{event_cls.__name__}"
    consume.__doc__ = handler.__doc__ or event_cls.__doc__
    router.subscriber(
        queue,
        EVENTS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=queue.name,
    )(consume)
    return queue


async def declare_topology(broker: RabbitBroker, queues: list[RabbitQueue]) -> None:
    """Declare the exchanges and, for each consumer queue, its dead-letter queue."""
    await broker.declare_exchange(EVENTS)
    dlx = await broker.declare_exchange(DEAD_LETTERS)
    for queue in queues:
        # A DLQ keeps as many copies as the queue it serves.
        replicas = (queue.arguments or {}).get(QUORUM_REPLICAS)
        arguments: QuorumQueueArgs = {}
        if isinstance(replicas, int):
            arguments["x-quorum-initial-group-size"] = replicas
        dlq = await broker.declare_queue(
            RabbitQueue(
                dead_letter_queue_name(queue.name),
                queue_type=QueueType.QUORUM,
                durable=True,
                arguments=arguments,
            )
        )
        await dlq.bind(dlx, routing_key=queue.name)
