"""Dead letters, for ops: how many each queue parked, what they are, and putting them back.

A message lands in `<queue>.dlq` after `delivery_limit` failed deliveries. Once the cause
is mended (a provider outage over, a bug fixed and deployed), `replay` moves the messages
back onto their own work queue through the default exchange, never onto the events
exchange: the other consumers of that event handled it already and must not see it again.
Replay is at-least-once: a crash between the publish and the ack leaves a copy in both
places, and the consumer's inbox drops the repeat.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from domainflow.contracts.topology import SUBSCRIPTIONS, dead_letter_queue_name, queue_name
from domainflow.kit.failover import Nodes, connect_any
from domainflow.kit.messaging import PARKED_DETAIL_HEADER, PARKED_REASON_HEADER

#: Header a replayed message carries: how many times it has been put back so far.
REPLAYS_HEADER = "domainflow-replays"


class UnknownQueueError(LookupError):
    """Not a consumer queue of this system; the message lists the ones that are."""


@dataclass(frozen=True)
class ParkedQueue:
    queue: str
    dead_letter_queue: str
    parked: int | None  # None: the queue was never declared (its service never started)


@dataclass(frozen=True)
class ParkedMessage:
    event_type: str | None
    event_id: str | None
    correlation_id: str | None
    #: RabbitMQ's (delivery_limit, rejected, expired, maxlen), or the consumer's when it
    #: could not read the message at all (not_json, unknown_version, invalid_event, ...).
    reason: str | None
    replays: int
    body: Any  # the event as JSON, or the raw text when it is not JSON
    #: The consumer's sentence on why it could not read the message (None: RabbitMQ parked it).
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "event_id": self.event_id,
            "correlation_id": self.correlation_id,
            "reason": self.reason,
            "detail": self.detail,
            "replays": self.replays,
            "event": self.body,
        }


def consumer_queues() -> list[str]:
    """Every work queue the topology table declares, in a stable order."""
    return sorted(
        queue_name(consumer, event_type)
        for consumer, event_types in SUBSCRIPTIONS.items()
        for event_type in event_types
    )


def work_queue(name: str) -> str:
    """`notifier.domain-status-changed` or its `.dlq` -> the work queue's name."""
    known = consumer_queues()
    queue = name.removesuffix(".dlq")
    if queue not in known:
        raise UnknownQueueError(
            f"no consumer queue named {name!r}; the queues are: {', '.join(known)}"
        )
    return queue


@contextlib.asynccontextmanager
async def _channel(amqp_url: Nodes) -> AsyncIterator[AbstractChannel]:
    connection = await connect_any(amqp_url)
    try:
        # Confirms make each publish wait for the broker's ack; a return (no such queue)
        # raises instead of silently dropping the message.
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)
    finally:
        await connection.close()


async def _passive(channel: AbstractChannel, name: str) -> AbstractQueue | None:
    try:
        return await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        await channel.reopen()  # a failed passive declare closes the channel
        return None


def _count(queue: AbstractQueue) -> int:
    result = queue.declaration_result
    return int(result.message_count or 0)


async def parked(amqp_url: Nodes) -> list[ParkedQueue]:
    """How many messages each consumer queue's DLQ holds."""
    counts: list[ParkedQueue] = []
    async with _channel(amqp_url) as channel:
        for queue in consumer_queues():
            dlq = await _passive(channel, dead_letter_queue_name(queue))
            counts.append(
                ParkedQueue(
                    queue, dead_letter_queue_name(queue), None if dlq is None else _count(dlq)
                )
            )
    return counts


def _describe(message: AbstractIncomingMessage) -> ParkedMessage:
    headers = message.headers or {}
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode(errors="replace")
    reason = headers.get(PARKED_REASON_HEADER) or headers.get("x-first-death-reason")
    replays = headers.get(REPLAYS_HEADER, 0)
    body_type = body.get("type") if isinstance(body, dict) else None
    return ParkedMessage(
        event_type=message.type or (body_type if isinstance(body_type, str) else None),
        event_id=message.message_id,
        correlation_id=message.correlation_id,
        reason=_text(reason),
        replays=replays if isinstance(replays, int) else 0,
        body=body,
        detail=_text(headers.get(PARKED_DETAIL_HEADER)),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value) if value else None


async def show(amqp_url: Nodes, name: str, *, limit: int = 20) -> list[ParkedMessage]:
    """The first `limit` parked messages of a queue, left where they are."""
    queue = work_queue(name)
    found: list[ParkedMessage] = []
    async with _channel(amqp_url) as channel:
        dlq = await _passive(channel, dead_letter_queue_name(queue))
        if dlq is None:
            return []
        for _ in range(min(limit, _count(dlq))):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            found.append(_describe(message))
        # Unacknowledged: closing the connection hands every one back to the DLQ.
    return found


async def replay(amqp_url: Nodes, name: str, *, limit: int | None = None) -> int:
    """Move parked messages back onto their work queue; returns how many were moved.

    Only the messages parked when the replay starts are moved, so one that fails again
    and comes back to the DLQ during the replay is not put back round and round.
    """
    queue = work_queue(name)
    moved = 0
    async with _channel(amqp_url) as channel:
        if await _passive(channel, queue) is None:
            raise UnknownQueueError(f"queue {queue!r} is not declared: start its service first")
        dlq = await _passive(channel, dead_letter_queue_name(queue))
        if dlq is None:
            return 0
        budget = _count(dlq) if limit is None else min(limit, _count(dlq))
        while moved < budget:
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = dict(message.headers or {})
            headers.pop("x-delivery-count", None)  # the broker counts afresh on the work queue
            for parked_by_consumer in (PARKED_REASON_HEADER, PARKED_DETAIL_HEADER):
                headers.pop(parked_by_consumer, None)  # its next refusal, if any, says anew
            replays = headers.get(REPLAYS_HEADER, 0)
            headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    type=message.type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
                mandatory=True,
            )
            await message.ack()
            moved += 1
    return moved
