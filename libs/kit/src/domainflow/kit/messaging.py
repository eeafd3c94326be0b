"""RabbitMQ topology and consumers: durable quorum queues, bounded redelivery, a DLQ each.

Every consumer queue is bound to the events topic exchange by the event's type and
dead-letters into `domainflow.dead-letter`, routed to its own `<queue>.dlq`. How many
deliveries a message gets, and how long queues may grow, are set by RabbitMQ policy
(`kit/policies.py`), not by queue arguments, so a changed setting applies to queues that
already exist. A failing handler is retried with growing pauses, never dropped
(FastStream's default would drop it: we nack explicitly). A handler that failed because a
server is away (PostgreSQL restarting) is retried in place until it is back: the outage is
not the message's fault and must not use up its deliveries. A message that cannot be read
at all (not JSON, a version this code does not know, invalid) is logged and parked at once
with its reason: redelivering it would fail the same way. So is one a handler can read but
never act on (it raises `PoisonEventError`: a region no SES endpoint has, written by an
older release or a bug), instead of being retried until the delivery limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
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
from pamqp import commands as spec
from yarl import URL

from domainflow.contracts import EVENT_TYPES, Event
from domainflow.contracts.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    SUBSCRIPTIONS,
    dead_letter_queue_name,
    queue_name,
)
from domainflow.kit import tracing
from domainflow.kit.envelope import UndecodableEventError, decode_as
from domainflow.kit.failover import fail_over, node_list
from domainflow.kit.logging import bind_context, clear_context, get_logger
from domainflow.kit.outages import through_outages
from domainflow.kit.policies import ManagementApi, QueueLimits, apply_policies, consumer_policies
from domainflow.kit.settings import ServiceSettings

log = get_logger(__name__)

EVENTS = RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
#: The queue argument naming how many cluster nodes hold a copy of a quorum queue.
QUORUM_REPLICAS: Final = "x-quorum-initial-group-size"
DEAD_LETTERS = RabbitExchange(DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True)

#: Headers a message parked by its consumer (not by RabbitMQ) carries: why, in one word and
#: in a sentence, and the queue that gave up on it.
PARKED_REASON_HEADER = "domainflow-parked-reason"
PARKED_DETAIL_HEADER = "domainflow-parked-detail"
PARKED_FROM_HEADER = "domainflow-parked-from"


class PoisonEventError(Exception):
    """A handler's word that it can read this event but never act on it: retrying cannot
    help, so the event is parked at once with `code` and `detail` (nothing it did is kept:
    the handler's transaction rolled back)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]


def connection_name(service: str, host: str, replica: str) -> str:
    """What the management UI shows for a replica's connection: `verifier@web-3#2`."""
    return f"{service}@{host}#{replica}"


def broker_for(
    amqp_url: str | Sequence[str],
    *,
    prefetch: int,
    graceful_timeout: float = 10.0,
    name: str | None = None,
    app_id: str = "domainflow",
) -> RabbitBroker:
    """The broker a service replica uses: each of its consumers holds at most `prefetch`
    unacknowledged messages. Every delivery is handled as a task of its own, so without the
    bound one replica would take a whole backlog at once (all of it in flight against SES
    and the database pool, none of it left for the other replicas). Given a cluster's node
    URLs, it connects to whichever answers and fails over between them."""
    urls = node_list(amqp_url)
    if name:
        # aiormq takes the connection's name from the URL's `name` query parameter.
        urls = [str(URL(url).update_query(name=name)) for url in urls]
    broker = RabbitBroker(
        urls[0],
        logger=None,
        graceful_timeout=graceful_timeout,
        default_channel=Channel(prefetch_count=prefetch),
        app_id=app_id,
    )
    return fail_over(broker, urls)


def consumer_queue(consumer: str, event_type: str, *, replicas: int | None = None) -> RabbitQueue:
    """A work queue. Only what never changes is an argument (type, where it dead-letters, how
    many cluster nodes hold it); the delivery limit, length limit and dead-letter strategy
    come from policy."""
    name = queue_name(consumer, event_type)
    arguments: QuorumQueueArgs = {
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": name,
    }
    if replicas is not None:
        arguments["x-quorum-initial-group-size"] = replicas
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=event_type,
        # Declared by `declare_topology`; the subscriber only looks it up.
        declare=False,
        arguments=arguments,
    )


def _backoff(delivery_count: int, ceiling: float) -> float:
    return float(min(ceiling, 0.25 * 2**delivery_count))


@dataclass(frozen=True)
class Redelivery:
    """How a consumer retries an event whose handler failed."""

    #: Deliveries before the event is parked in its queue's DLQ (applied by policy).
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
            limit=settings.redelivery.delivery_limit,
            backoff_max=settings.redelivery.backoff_max,
            outage_patience=settings.redelivery.outage_patience,
            replicas=settings.broker.quorum_replicas or None,
        )


DEFAULT_REDELIVERY = Redelivery()


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def message_properties(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The AMQP properties and headers of a delivery, as a log line can hold them."""
    return {
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "type": message.type,
        "app_id": message.app_id,
        "content_type": message.content_type,
        "headers": {k: _text(v) for k, v in (message.headers or {}).items()},
    }


async def park(
    message: AbstractIncomingMessage,
    queue: str,
    refusal: UndecodableEventError | PoisonEventError,
) -> None:
    """Put an unreadable message in `queue`'s DLQ with its reason; the caller then acks it.

    Published with a confirm before the ack: a crash in between leaves a copy in both
    places, never in neither."""
    headers = dict(message.headers or {})
    headers.update(
        {
            PARKED_REASON_HEADER: refusal.code,
            PARKED_DETAIL_HEADER: refusal.detail[:1000],
            PARKED_FROM_HEADER: queue,
        }
    )
    parked = aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    confirmation = await message.channel.basic_publish(
        message.body,
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=queue,
        properties=parked.properties,
    )
    if confirmation is not None and not isinstance(confirmation, spec.Basic.Ack):
        raise RuntimeError(f"RabbitMQ refused to park a message in {queue}.dlq")


def subscribe(
    router: RabbitRouter,
    consumer: str,
    event_cls: type[E],
    handler: Handler[E],
    *,
    redelivery: Redelivery = DEFAULT_REDELIVERY,
) -> RabbitQueue:
    """Register `handler` for `event_cls` on `consumer`'s queue; returns the queue."""
    queue = consumer_queue(consumer, event_cls.TYPE, replicas=redelivery.replicas)

    async def consume(message: RabbitMessage) -> None:
        clear_context()
        raw = message.raw_message
        if not tracing.enabled():
            await handle(raw)
            return
        # Continues the trace of the request that caused the event (its `traceparent`).
        with tracing.consuming(
            raw.headers,
            queue.name,
            {
                "messaging.destination.name": raw.exchange or EVENTS.name,
                "messaging.rabbitmq.destination.routing_key": raw.routing_key or "",
                "messaging.message.id": raw.message_id or "",
            },
        ):
            await handle(raw)

    async def handle(raw: AbstractIncomingMessage) -> None:
        try:
            event = decode_as(event_cls, raw.body)
        except UndecodableEventError as refusal:
            bind_context(service=consumer, event_type=event_cls.TYPE)
            log.error(
                "event.undecodable",
                queue=queue.name,
                routing_key=raw.routing_key,
                properties=message_properties(raw),
                reason=refusal.code,
                error=refusal.detail,
            )
            await park(raw, queue.name, refusal)
            return
        bind_context(
            service=consumer,
            correlation_id=event.correlation_id,
            event_id=str(event.event_id),
            event_type=event.TYPE,
        )
        if (trace_id := tracing.current_trace_id()) is not None:
            bind_context(trace_id=trace_id)
        try:
            await through_outages(
                "a server the handler needs", lambda: handler(event),  # type: ignore[arg-type]
                within=redelivery.outage_patience,
            )  # fmt: skip
        except PoisonEventError as poison:
            log.error(
                "event.poison",
                queue=queue.name,
                properties=message_properties(raw),
                reason=poison.code,
                error=poison.detail,
            )
            await park(raw, queue.name, poison)
            return
        except Exception:
            raw_headers = raw.headers or {}
            count_raw = raw_headers.get("x-delivery-count", 0)
            count = count_raw if isinstance(count_raw, int) else 0
            pause = _backoff(count, redelivery.backoff_max)
            log.exception("event.handler_failed", delivery_count=count, retry_in=pause)
            await asyncio.sleep(pause)
            raise  # nack: redelivered until the limit, then dead-lettered

    consume.__name__ = f"{consumer}_{event_cls.__name__}"
    consume.__doc__ = handler.__doc__ or event_cls.__doc__
    router.subscriber(
        queue,
        EVENTS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=queue.name,
        decoder=_undecoded,
    )(consume)
    return queue


async def _undecoded(message: Any) -> Any:
    """FastStream's own decoder would fail on a body that is not JSON before `consume` could
    park it; `consume` reads the raw body itself."""
    return message.body


class SubscriptionMismatchError(LookupError):
    """A service's handlers and the subscription table disagree."""


def subscribe_all(
    router: RabbitRouter,
    consumer: str,
    handlers: Mapping[str, Handler[Any]],
    *,
    redelivery: Redelivery = DEFAULT_REDELIVERY,
) -> list[RabbitQueue]:
    """Subscribe `consumer` to every event the subscription table gives it, each with its
    handler from `{event type: handler}`; a handler missing or extra is a start-up error."""
    wanted = SUBSCRIPTIONS.get(consumer, ())
    if set(handlers) != set(wanted):
        raise SubscriptionMismatchError(
            f"{consumer} subscribes to {sorted(wanted)} (contracts/topology.py) but has"
            f" handlers for {sorted(handlers)}"
        )
    return [
        subscribe(router, consumer, EVENT_TYPES[t], handlers[t], redelivery=redelivery)
        for t in wanted
    ]


async def _declare_queue(connection: AbstractConnection, queue: RabbitQueue) -> None:
    """Declare a work queue; one an older release declared with other arguments (such as a
    fixed `x-delivery-limit`) is used as it is, with a warning, instead of failing start-up."""
    arguments = {"x-queue-type": "quorum", **dict(queue.arguments or {})}
    try:
        async with connection.channel() as channel:  # a refusal closes the channel: our own
            await channel.declare_queue(queue.name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as error:
        log.warning(
            "queue.arguments_differ",
            queue=queue.name,
            error=str(error),
            advice="drain and delete the queue, then restart, for policy alone to govern it",
        )


async def retire_queues(connection: AbstractConnection, names: Sequence[str]) -> list[str]:
    """Delete each retired queue no consumer reads any more, and its dead-letter queue once
    empty (parked events are an operator's to look at); returns the queues still to retire.

    Quorum queues take no `if-unused` or `if-empty` on delete (RabbitMQ closes the whole
    connection for it), so each is looked at first: a queue only the earlier release's
    replicas consume gets no new reader in between (this release never reads it)."""
    left: list[str] = []
    for name in names:
        dead_letters = dead_letter_queue_name(name)
        readers, waiting = await _looked_at(connection, name)
        if readers:
            left.append(name)  # a replica of the earlier release still reads it
            continue
        if waiting is not None:
            async with connection.channel() as channel:
                await channel.queue_delete(name)
            # Dropped messages are changes the earlier release's replicas never read.
            (log.warning if waiting else log.info)(
                "queue.retired", queue=name, messages_dropped=waiting
            )
        _, parked = await _looked_at(connection, dead_letters)
        if parked:
            log.warning(
                "queue.retired_dead_letters_kept",
                queue=dead_letters,
                parked=parked,
                advice="replay or purge the parked events; the queue then goes by itself",
            )
            left.append(name)
        elif parked is not None:
            async with connection.channel() as channel:
                await channel.queue_delete(dead_letters)
    return left


async def _looked_at(connection: AbstractConnection, name: str) -> tuple[int, int | None]:
    """A queue's consumers and messages; (0, None) when there is no such queue."""
    try:
        async with connection.channel() as channel:  # a missing queue closes the channel
            queue = await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return 0, None
    result = queue.declaration_result
    return result.consumer_count or 0, result.message_count or 0


async def declare_topology(
    broker: RabbitBroker,
    queues: list[RabbitQueue],
    *,
    amqp_url: str | Sequence[str] | None = None,
    management_url: str = "",
    limits: QueueLimits | None = None,
) -> None:
    """Declare the exchanges and, for each consumer queue, the queue bound to the events
    exchange and its dead-letter queue bound to the dead-letter exchange; with `amqp_url`,
    first put the policies that bound them (`limits`) for every consumer among `queues`."""
    if amqp_url is not None:
        consumers = sorted({q.name.split(".", 1)[0] for q in queues})
        policies = [p for c in consumers for p in consumer_policies(c, limits or QueueLimits())]
        # Policies are the cluster's: any node's API takes them; try each until one answers.
        nodes = node_list(amqp_url)
        for i, url in enumerate(nodes):
            try:
                await apply_policies(ManagementApi.for_amqp(url, management_url), policies)
                break
            except OSError:
                if i == len(nodes) - 1:
                    raise
    connection = await broker.connect()
    async with connection.channel() as channel:
        events = await channel.declare_exchange(EVENTS.name, "topic", durable=True)
        dlx = await channel.declare_exchange(DEAD_LETTERS.name, "direct", durable=True)
    for queue in queues:
        await _declare_queue(connection, queue)
        async with connection.channel() as channel:
            work = await channel.declare_queue(queue.name, passive=True)
            await work.bind(events.name, routing_key=queue.routing_key or queue.name)
            # A DLQ keeps as many copies as the queue it serves.
            replicas = (queue.arguments or {}).get(QUORUM_REPLICAS)
            dlq_arguments: dict[str, Any] = {"x-queue-type": "quorum"}
            if isinstance(replicas, int):
                dlq_arguments[QUORUM_REPLICAS] = replicas
            dlq = await channel.declare_queue(
                dead_letter_queue_name(queue.name), durable=True, arguments=dlq_arguments
            )
            await dlq.bind(dlx.name, routing_key=queue.name)
