"""An earlier release's queue is deleted once nobody reads it, its parked events kept.

Real RabbitMQ, in a vhost of this module's own: the queue the notifier read until 1.4 is set
up as an upgraded install has it (bound to every status change, with a DLQ), a replica of
the earlier release still consuming it; the retirement waits for that replica, then deletes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from pamqp.common import FieldValue

from domainflow.contracts.topology import (
    EVENTS_EXCHANGE,
    RETIRED_QUEUES,
    dead_letter_queue_name,
)
from domainflow.kit.messaging import retire_queues

pytestmark = pytest.mark.integration

RETIRED = RETIRED_QUEUES["notifier"][0]


@pytest.fixture
async def connection(amqp_vhost: object) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    url = amqp_vhost("retired")  # type: ignore[operator]
    connection = await aio_pika.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def _exists(connection: aio_pika.abc.AbstractConnection, name: str) -> int | None:
    """The queue's message count, or None when it does not exist."""
    try:
        async with connection.channel() as channel:
            queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return None
    assert queue.declaration_result.message_count is not None
    return queue.declaration_result.message_count


async def _as_upgraded(connection: aio_pika.abc.AbstractConnection, parked: int) -> None:
    """The queue and its DLQ as the earlier release declared them, one status change in the
    queue and `parked` events in the DLQ."""
    async with connection.channel() as channel:
        events = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
        quorum: dict[str, FieldValue] = {"x-queue-type": "quorum"}
        queue = await channel.declare_queue(RETIRED, durable=True, arguments=quorum)
        await queue.bind(events, routing_key="domain.status_changed")
        dlq = dead_letter_queue_name(RETIRED)
        await channel.declare_queue(dlq, durable=True, arguments=quorum)
        await events.publish(aio_pika.Message(b"{}"), routing_key="domain.status_changed")
        for _ in range(parked):
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=dlq)


async def test_a_retired_queue_goes_once_the_earlier_release_stops_reading_it(
    connection: aio_pika.abc.AbstractConnection,
) -> None:
    await _as_upgraded(connection, parked=0)
    reader = await connection.channel()
    earlier = await reader.get_queue(RETIRED)

    async def read(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()

    tag = await earlier.consume(read)

    # A replica of the earlier release still reads it: it stays, to be tried again.
    assert await retire_queues(connection, [RETIRED]) == [RETIRED]
    assert await _exists(connection, RETIRED) is not None

    await earlier.cancel(tag)
    await reader.close()
    assert await retire_queues(connection, [RETIRED]) == []
    assert await _exists(connection, RETIRED) is None
    assert await _exists(connection, dead_letter_queue_name(RETIRED)) is None
    # Nothing left to do: a second pass (the next start) finds nothing and says so.
    assert await retire_queues(connection, [RETIRED]) == []


async def test_parked_events_keep_the_dead_letter_queue_until_an_operator_empties_it(
    connection: aio_pika.abc.AbstractConnection,
) -> None:
    await _as_upgraded(connection, parked=2)

    assert await retire_queues(connection, [RETIRED]) == [RETIRED]
    assert await _exists(connection, RETIRED) is None  # nobody read it: it is gone
    assert await _exists(connection, dead_letter_queue_name(RETIRED)) == 2

    async with connection.channel() as channel:
        await (await channel.get_queue(dead_letter_queue_name(RETIRED))).purge()
    assert await retire_queues(connection, [RETIRED]) == []
    assert await _exists(connection, dead_letter_queue_name(RETIRED)) is None
