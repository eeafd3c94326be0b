"""A replica's consumer holds at most `broker.prefetch` messages; the rest wait in the queue
for whichever replica is free (real RabbitMQ, a vhost per case)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker, RabbitRouter

from domainflow.contracts import DomainDeleted
from domainflow.kit.envelope import encode
from domainflow.kit.messaging import EVENTS, broker_for, declare_topology, subscribe

pytestmark = pytest.mark.integration

MESSAGES = 10
QUEUE = "verifier.domain-deleted"


async def _peak_in_flight(url: str, broker: RabbitBroker, expect: int) -> tuple[int, int]:
    """Hold every delivery until all have been counted; (most at once, left in the queue).

    Waits for `expect` deliveries to arrive (a loaded machine may take a while), then a
    little longer, in which a broken bound would let more in."""
    release, all_handled = asyncio.Event(), asyncio.Event()
    in_flight = 0
    peak = 0
    handled: list[str] = []

    async def hold(event: DomainDeleted) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        handled.append(event.domain_id)
        if len(handled) == MESSAGES:
            all_handled.set()

    router = RabbitRouter()
    queue = subscribe(router, "verifier", DomainDeleted, hold)
    await broker.connect()
    await declare_topology(broker, [queue])
    broker.include_router(router)
    await broker.start()
    try:
        for n in range(MESSAGES):
            event = DomainDeleted(
                correlation_id=f"req-{n}", team_id="team_prefetch", domain_id=f"dom_{n}",
                domain=f"d{n}.example",
            )  # fmt: skip
            await broker.publish(encode(event), exchange=EVENTS, routing_key=event.type)
        for _ in range(300):  # up to 30 s
            if in_flight >= expect:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(QUEUE, passive=True)
            waiting = int(declared.declaration_result.message_count or 0)
        finally:
            await connection.close()
        release.set()
        await asyncio.wait_for(all_handled.wait(), timeout=30)
        return peak, waiting
    finally:
        release.set()
        await broker.stop()


async def test_the_prefetch_bounds_what_one_replica_takes(
    amqp_vhost: Callable[[str], str],
) -> None:
    url = amqp_vhost("prefetch")
    assert await _peak_in_flight(url, broker_for(url, prefetch=3), 3) == (3, MESSAGES - 3)


async def test_without_the_bound_one_replica_would_take_the_whole_backlog(
    amqp_vhost: Callable[[str], str],
) -> None:
    url = amqp_vhost("noprefetch")  # FastStream's default channel: no limit at all
    assert await _peak_in_flight(url, RabbitBroker(url, logger=None), MESSAGES) == (MESSAGES, 0)
