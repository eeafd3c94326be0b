"""PostgreSQL going away under a consumer does not park the events in flight: the handler is
retried in place until the database is back, and the event is handled once, with its
deliveries untouched. Beyond the patience, the usual redelivery and DLQ take over.

Real PostgreSQL (through a link the test cuts) and RabbitMQ (a vhost of the test's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aio_pika
import pytest
from faststream.rabbit import RabbitRouter

from domainflow.contracts import DomainDeleted
from domainflow.contracts.topology import dead_letter_queue_name
from domainflow.kit.envelope import encode
from domainflow.kit.inbox import claim
from domainflow.kit.messaging import EVENTS, Redelivery, subscribe
from domainflow.kit.runtime import ServiceRuntime
from domainflow.kit.settings import BrokerSettings, DatabaseSettings, ServiceSettings
from domainflow.sandbox.link import CuttableLink

pytestmark = pytest.mark.integration

CONSUMER = "outage-test"
#: Two deliveries 0.05 s apart: without waiting, a cut of a second or two parks the event.
REDELIVERY = Redelivery(limit=2, backoff_max=0.05)


@dataclass
class Consumer:
    runtime: ServiceRuntime
    link: CuttableLink
    amqp_url: str
    handled: list[str]

    async def send(self, domain_id: str) -> None:
        event = DomainDeleted(
            correlation_id=f"req-{domain_id}", team_id="team_outage", domain_id=domain_id,
            domain=f"{domain_id}.example",
        )  # fmt: skip
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(EVENTS.name)
            await exchange.publish(aio_pika.Message(encode(event)), routing_key=event.type)
        finally:
            await connection.close()

    async def parked(self) -> int:
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            name = dead_letter_queue_name(f"{CONSUMER}.domain-deleted")
            dlq = await channel.declare_queue(name, passive=True)
            return int(dlq.declaration_result.message_count or 0)
        finally:
            await connection.close()

    async def until(self, check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
        for _ in range(int(within * 10)):
            if await check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not within {within}s; handled {self.handled}")


@asynccontextmanager
async def running_consumer(
    amqp_vhost: Callable[[str], str],
    database_url: Callable[[str], Awaitable[str]],
    *,
    patience: float,
) -> AsyncIterator[Consumer]:
    real_db = await database_url("consumer_outage")
    link = CuttableLink(real_db)
    await link.up()
    amqp_url = amqp_vhost("consumer-outage")
    settings = ServiceSettings(
        broker=BrokerSettings(amqp_url=amqp_url), database=DatabaseSettings(pool_size=2)
    )
    runtime = ServiceRuntime(CONSUMER, settings, link.url_for(real_db))
    await runtime.open([])
    consumer = Consumer(runtime, link, amqp_url, [])

    async def on_deleted(event: DomainDeleted) -> None:
        # What every handler does first: claim the event in the inbox, in a transaction.
        async with runtime.db.transaction() as conn:
            if await claim(conn, CONSUMER, event):
                consumer.handled.append(event.domain_id)

    router = RabbitRouter()
    redelivery = Redelivery(REDELIVERY.limit, REDELIVERY.backoff_max, patience)
    queue = subscribe(router, CONSUMER, DomainDeleted, on_deleted, redelivery=redelivery)
    await runtime.start(router, [queue], relay_outbox=False)
    try:
        yield consumer
    finally:
        await link.up()  # let the runtime close its pool cleanly
        await runtime.close()
        await link.cut()


Vhost = Callable[[str], str]
DatabaseUrl = Callable[[str], Awaitable[str]]


async def test_an_event_arriving_while_the_database_is_away_waits_for_it(
    amqp_vhost: Vhost, database_url: DatabaseUrl
) -> None:
    async with running_consumer(amqp_vhost, database_url, patience=120.0) as patient:
        await patient.send("before")
        await patient.until(lambda: _handled(patient, "before"))

        await patient.link.cut()
        await patient.send("during")
        # Far longer than two deliveries 0.05 s apart take: without waiting, it is parked.
        await asyncio.sleep(2.0)
        assert "during" not in patient.handled
        assert await patient.parked() == 0

        await patient.link.up()
        await patient.until(lambda: _handled(patient, "during"))
        assert patient.handled == ["before", "during"]
        assert await patient.parked() == 0


async def test_without_patience_the_same_outage_parks_the_event(
    amqp_vhost: Vhost, database_url: DatabaseUrl
) -> None:
    # The control: what the test above guards against.
    async with running_consumer(amqp_vhost, database_url, patience=0.0) as impatient:
        await impatient.link.cut()
        await impatient.send("during")
        await impatient.until(lambda: _parked(impatient))
        await impatient.link.up()
        assert impatient.handled == []


async def _handled(consumer: Consumer, domain_id: str) -> bool:
    return domain_id in consumer.handled


async def _parked(consumer: Consumer) -> bool:
    return await consumer.parked() == 1
