"""RabbitMQ dropping a replica's connections (a broker restart, a network cut) costs nothing:
the replica reconnects by itself, consumes again, and its outbox relay publishes what was
written meanwhile without waiting out its lease.

Real RabbitMQ and PostgreSQL; the broker itself closes the connections
(`rabbitmqctl close_all_connections` on the test's own vhost).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import unquote, urlsplit

import pytest
from faststream.rabbit import RabbitRouter

from domainflow.contracts import DomainDeleted
from domainflow.kit import outbox
from domainflow.kit.messaging import subscribe
from domainflow.kit.runtime import ServiceRuntime
from domainflow.kit.settings import BrokerSettings, OutboxSettings, ServiceSettings

pytestmark = pytest.mark.integration

#: Far longer than the test waits: an event stuck behind its lease would fail the test.
LEASE_SECONDS = 600.0


class Replica:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.received: list[str] = []

    async def on_deleted(self, event: DomainDeleted) -> None:
        self.received.append(event.domain_id)

    async def emit(self, domain_id: str) -> None:
        event = DomainDeleted(
            correlation_id=f"req-{domain_id}", team_id="team_outage", domain_id=domain_id,
            domain=f"{domain_id}.example",
        )  # fmt: skip
        async with self.runtime.db.transaction() as conn:
            await outbox.add(conn, event)

    async def until_received(self, *domain_ids: str, within: float = 60.0) -> None:
        for _ in range(int(within * 10)):
            if set(domain_ids) <= set(self.received):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"received {self.received}, not all of {domain_ids}")


@pytest.fixture
async def replica(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> AsyncIterator[Replica]:
    settings = ServiceSettings(
        broker=BrokerSettings(amqp_url=amqp_vhost("outage")),
        outbox=OutboxSettings(poll_interval=0.2, lease_seconds=LEASE_SECONDS),
    )
    runtime = ServiceRuntime("outage-test", settings, await database_url("outage"))
    await runtime.open([])
    replica = Replica(runtime)
    router = RabbitRouter()
    queue = subscribe(router, "outage-test", DomainDeleted, replica.on_deleted)
    await runtime.start(router, [queue])
    try:
        yield replica
    finally:
        await runtime.close()


def _close_connections(amqp_url: str) -> int:
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "-p", vhost, "name"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "test: broker outage"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return len([line for line in listed.stdout.splitlines() if line.strip()])


async def test_a_replica_reconnects_and_relays_what_was_written_during_the_outage(
    replica: Replica,
) -> None:
    await replica.emit("before")
    await replica.until_received("before")

    closed = await asyncio.to_thread(_close_connections, replica.runtime.settings.broker.amqp_url)
    assert closed >= 1  # the replica's connection really was cut
    await replica.emit("during")  # written while the connection is down or coming back
    await replica.until_received("during")
    await replica.emit("after")
    await replica.until_received("after")
    assert sorted(set(replica.received)) == ["after", "before", "during"]
    assert await replica.runtime.ready()
