"""LISTEN survives PostgreSQL going away: the listener connects again by itself, says so, and
the outbox relay (woken only by notifications here) publishes promptly afterwards.

Real PostgreSQL behind a link the test cuts, and real RabbitMQ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from faststream.rabbit import RabbitRouter

from domainflow.contracts import DomainDeleted
from domainflow.kit import outbox
from domainflow.kit.database import Database
from domainflow.kit.listener import ChannelListener
from domainflow.kit.messaging import subscribe
from domainflow.kit.runtime import ServiceRuntime, kit_migrations
from domainflow.kit.settings import BrokerSettings, OutboxSettings, ServiceSettings
from domainflow.sandbox.link import CuttableLink

pytestmark = pytest.mark.integration

CHANNEL = "domainflow_listener_test"


async def _until(check: Callable[[], bool], within: float = 60.0) -> None:
    for _ in range(int(within * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within}s")


@pytest.fixture
async def real_db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    db = await Database.prepare(await database_url("listener"), kit_migrations(), size=2)
    try:
        yield db
    finally:
        await db.close()


async def _notify(db: Database, payload: str) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


async def test_the_listener_listens_again_after_the_connection_is_lost(real_db: Database) -> None:
    heard: list[str] = []
    resumed: list[int] = []
    link = CuttableLink(real_db.url)
    await link.up()
    listener = ChannelListener(
        link.url_for(real_db.url),
        CHANNEL,
        heard.append,
        lambda: resumed.append(1),
        longest_pause=0.5,
    )
    await listener.start()
    try:
        await _notify(real_db, "first")
        await _until(lambda: heard == ["first"])

        await link.cut()
        await _until(lambda: not listener.listening)
        await link.up()
        await _until(lambda: listener.listening)
        assert (listener.resumptions, resumed) == (1, [1])  # the owner was told to look again
        await _notify(real_db, "second")
        await _until(lambda: heard == ["first", "second"])
    finally:
        await listener.stop()
        await link.cut()


async def test_a_listener_started_while_the_database_is_away_listens_once_it_is_back(
    real_db: Database,
) -> None:
    heard: list[str] = []
    link = CuttableLink(real_db.url)  # not up: every connection refused
    listener = ChannelListener(
        link.url_for(real_db.url), CHANNEL, heard.append, lambda: None, longest_pause=0.5
    )
    await listener.start()  # does not raise: it keeps trying in the background
    try:
        assert not listener.listening
        await link.up()
        await _until(lambda: listener.listening)
        await _notify(real_db, "late")
        await _until(lambda: heard == ["late"])
    finally:
        await listener.stop()
        await link.cut()


async def test_the_relay_is_woken_by_notifications_again_after_a_database_restart(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    real = await database_url("listener_relay")
    link = CuttableLink(real)
    await link.up()
    # A poll of ten minutes: only a notification (or a resumed listener) can wake the relay.
    settings = ServiceSettings(
        broker=BrokerSettings(amqp_url=amqp_vhost("listener")),
        outbox=OutboxSettings(poll_interval=600),
    )
    runtime = ServiceRuntime("listener-test", settings, link.url_for(real))
    await runtime.open([])
    received: list[str] = []

    async def on_deleted(event: DomainDeleted) -> None:
        received.append(event.domain_id)

    router = RabbitRouter()
    queue = subscribe(router, "listener-test", DomainDeleted, on_deleted)
    await runtime.start(router, [queue])

    async def emit(domain_id: str) -> None:
        event = DomainDeleted(
            correlation_id="req", team_id="team", domain_id=domain_id, domain="x.example"
        )
        async with runtime.db.transaction() as conn:
            await outbox.add(conn, event)

    try:
        await emit("before")
        await _until(lambda: received == ["before"])
        await link.cut()  # PostgreSQL "restarts": every connection of the replica drops
        await asyncio.sleep(0.5)
        await link.up()
        for n in range(3):  # each one promptly, not after the ten-minute poll
            await emit(f"after-{n}")
            await _until(lambda n=n: f"after-{n}" in received)  # type: ignore[misc]
    finally:
        await link.up()
        await runtime.close()
        await link.cut()
