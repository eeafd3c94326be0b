"""A replica started before its servers waits for them; one that cannot get in fails at once.

Real PostgreSQL and RabbitMQ, reached through a loopback link that starts listening
only when the test says so: until then every connection is refused, as on a machine where
the services boot together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiormq.exceptions import ProbableAuthenticationError

from domainflow.kit.runtime import ServiceRuntime
from domainflow.kit.settings import BrokerSettings, ServiceSettings, StartupSettings
from domainflow.sandbox.link import CuttableLink
from tests.plugins.infra import AMQP_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
async def late_servers(
    database_url: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[CuttableLink, CuttableLink, str]]:
    real_db = await database_url("startup")
    postgres, rabbitmq = CuttableLink(real_db), CuttableLink(AMQP_ROOT)
    try:
        yield postgres, rabbitmq, real_db
    finally:
        await postgres.cut()
        await rabbitmq.cut()


async def test_a_replica_started_before_its_servers_waits_for_them(
    late_servers: tuple[CuttableLink, CuttableLink, str],
) -> None:
    postgres, rabbitmq, real_db = late_servers
    runtime = ServiceRuntime(
        "startup-test",
        ServiceSettings(
            broker=BrokerSettings(amqp_url=rabbitmq.url_for(AMQP_ROOT + "/")),
            startup=StartupSettings(timeout=60),
        ),
        postgres.url_for(real_db),
    )
    opening = asyncio.create_task(runtime.open([]))
    await asyncio.sleep(1.0)
    assert not opening.done()  # without waiting, the refused connection ended it at once
    await postgres.up()
    await asyncio.sleep(1.0)
    assert not opening.done()  # the database is in; RabbitMQ still refuses
    await rabbitmq.up()
    await asyncio.wait_for(opening, 30)
    try:
        assert await runtime.ready()
    finally:
        await runtime.close()


async def test_past_the_startup_timeout_the_refusal_is_raised(
    late_servers: tuple[CuttableLink, CuttableLink, str],
) -> None:
    postgres, _, real_db = late_servers
    runtime = ServiceRuntime(
        "startup-test",
        ServiceSettings(
            broker=BrokerSettings(amqp_url=AMQP_ROOT + "/"),
            startup=StartupSettings(timeout=0.5),
        ),
        postgres.url_for(real_db),
    )
    with pytest.raises(OSError, match="Connect call failed"):
        await asyncio.wait_for(runtime.open([]), 30)


async def test_wrong_credentials_fail_without_waiting(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    parts = urlsplit(AMQP_ROOT)
    wrong = urlunsplit(
        parts._replace(netloc=f"guest:not-the-password@{parts.hostname}:{parts.port}")
    )
    runtime = ServiceRuntime(
        "startup-test",
        ServiceSettings(
            broker=BrokerSettings(amqp_url=wrong + "/"),
            startup=StartupSettings(timeout=600),
        ),
        await database_url("startup"),
    )
    try:
        # Waited out, this would take the ten minutes; wait_for turns that into a failure.
        with pytest.raises(ProbableAuthenticationError):
            await asyncio.wait_for(runtime.open([]), 60)
    finally:
        with contextlib.suppress(Exception):
            await runtime.close()
