"""The outbox relay publishes a row committed while it is busy at once, not a poll later.

Real PostgreSQL and RabbitMQ. The relay's poll is ten minutes, so only a notification can
wake it; the test commits a row while a pass is running, after that pass's query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from faststream.rabbit import RabbitRouter

from domainflow.contracts import DomainDeleted, DomainStatus, DomainStatusChanged
from domainflow.kit import outbox
from domainflow.kit.database import Database
from domainflow.kit.envelope import encode as outbox_body
from domainflow.kit.messaging import broker_for, declare_topology, subscribe
from domainflow.kit.outbox import OutboxRelay, PublishRefusedError, _Row
from domainflow.kit.runtime import kit_migrations

pytestmark = pytest.mark.integration


async def _emit(db: Database, domain_id: str) -> None:
    event = DomainDeleted(
        correlation_id="req", team_id="t", domain_id=domain_id, domain="x.example"
    )
    async with db.transaction() as conn:
        await outbox.add(conn, event)


class RelayRacedByACommit(OutboxRelay):
    """After its first busy pass, a row is committed (and NOTIFY sent) before the pass ends."""

    raced = False

    async def _settle(
        self, token: uuid.UUID, rows: list[_Row], published: list[int], *, quiet: bool = False
    ) -> None:
        await super()._settle(token, rows, published, quiet=quiet)
        if rows and not self.raced:
            self.raced = True
            await _emit(self._db, "committed-mid-pass")
            await asyncio.sleep(0.2)  # the notification arrives while this pass is running


async def test_a_row_committed_during_a_pass_is_relayed_without_waiting_for_the_poll(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    db = await Database.prepare(await database_url("relay_race"), kit_migrations(), size=2)
    broker = broker_for(amqp_vhost("relay-race"), prefetch=8)
    received: list[str] = []

    async def on_deleted(event: DomainDeleted) -> None:
        received.append(event.domain_id)

    router = RabbitRouter()
    queue = subscribe(router, "relay-test", DomainDeleted, on_deleted)
    await broker.connect()
    await declare_topology(broker, [queue])
    broker.include_router(router)
    await broker.start()
    relay = RelayRacedByACommit(db, broker, poll_interval=600.0)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # listening
        await _emit(db, "first")
        for _ in range(600):  # a minute at most; the poll alone would take ten
            if "committed-mid-pass" in received:
                break
            await asyncio.sleep(0.1)
        assert relay.raced
        assert received == ["first", "committed-mid-pass"]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await broker.stop()
        await db.close()


async def test_a_pipelined_batch_keeps_each_domains_events_in_commit_order(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    db = await Database.prepare(await database_url("relay_order"), kit_migrations(), size=2)
    broker = broker_for(amqp_vhost("relay-order"), prefetch=1)
    received: dict[str, list[int]] = {}
    domains, per_domain = 7, 60  # 420 rows: three batches, each domain in all of them

    async def on_status_changed(event: DomainStatusChanged) -> None:
        received.setdefault(event.domain_id, []).append(event.consecutive_failures)

    router = RabbitRouter()
    queue = subscribe(router, "order-test", DomainStatusChanged, on_status_changed)
    await broker.connect()
    await declare_topology(broker, [queue])
    broker.include_router(router)
    await broker.start()
    async with db.transaction() as conn:
        for step in range(per_domain):  # interleaved, as commits of many domains are
            await outbox.add(
                conn,
                *(
                    DomainStatusChanged(
                        correlation_id="req", team_id="t", domain_id=f"dom_{d}",
                        domain=f"d{d}.example", region="us-east-1", old_status=None,
                        new_status=DomainStatus.PENDING, reason="order",
                        consecutive_failures=step,  # the commit position within the domain
                    )
                    for d in range(domains)
                ),
            )  # fmt: skip
    relay = OutboxRelay(db, broker, batch_size=200)
    try:
        await relay.drain()  # batches claimed while the one before is being published
        for _ in range(600):
            if sum(len(v) for v in received.values()) >= domains * per_domain:
                break
            await asyncio.sleep(0.1)
        assert received == {f"dom_{d}": list(range(per_domain)) for d in range(domains)}
    finally:
        await broker.stop()
        await db.close()


async def test_a_full_queue_refuses_and_the_outbox_keeps_the_domains_events_in_order(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    url = amqp_vhost("relay-full")
    db = await Database.prepare(await database_url("relay_full"), kit_migrations(), size=2)
    broker = broker_for(url, prefetch=1)
    await broker.connect()
    # A queue with room for one that refuses (nacks) more, as a full work queue does under
    # its reject-publish policy; a classic queue applies the limit exactly, message by message.
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange("domainflow.events", "topic", durable=True)
    bounded = await channel.declare_queue(
        FULL_QUEUE, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await bounded.bind(exchange, routing_key=DomainStatusChanged.TYPE)
    await _fill(url, _step("dom_other", -1))
    async with db.transaction() as conn:
        await outbox.add(conn, *(_step("dom_full", n) for n in range(STEPS)))
    relay = OutboxRelay(db, broker)
    try:
        with pytest.raises(PublishRefusedError):
            await relay.drain()
        async with db.pool.acquire() as conn:
            waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE lease_token IS NULL")
        assert waiting == STEPS  # every one refused is kept, and due again at once
        received: list[int] = []
        for _ in range(2 * STEPS):  # the consumer takes one, the relay tries again: one fits
            while (step := await _take(url, FULL_QUEUE)) is not None:
                received.append(step)
            with contextlib.suppress(PublishRefusedError):
                await relay.drain()
            async with db.pool.acquire() as conn:
                if await conn.fetchval("SELECT count(*) FROM outbox") == 0:
                    break
        while (step := await _take(url, FULL_QUEUE)) is not None:
            received.append(step)
        # Each pass, the first in line got in and every later one of the domain waited.
        assert received == [-1, *range(STEPS)]
    finally:
        await connection.close()
        await broker.stop()
        await db.close()


FULL_QUEUE = "full-test.bounded"
STEPS = 20


async def _fill(url: str, event: DomainStatusChanged) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("domainflow.events")
        await exchange.publish(aio_pika.Message(outbox_body(event)), routing_key=event.TYPE)


def _step(domain_id: str, n: int) -> DomainStatusChanged:
    return DomainStatusChanged(
        correlation_id="req", team_id="t", domain_id=domain_id, domain="f.example",
        region="us-east-1", old_status=None, new_status=DomainStatus.PENDING, reason="full",
        consecutive_failures=n,
    )  # fmt: skip


async def _take(url: str, queue: str) -> int | None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        work = await channel.declare_queue(queue, passive=True)
        message = await work.get(fail=False)
        if message is None:
            return None
        await message.ack()
        return int(json.loads(message.body)["consecutive_failures"])
