"""A subscriber the CLI creates reads public events and cannot forge anything: RabbitMQ says no.

Real RabbitMQ, a vhost of this module's own; the subscriber is made by the real command,
then connects with the login it printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit.policies import ManagementApi

pytestmark = pytest.mark.integration


def _as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user)}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _cli(url: str, *argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "domainflow.cli", *argv,
        env={**os.environ, "DOMAINFLOW_AMQP_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _publish(url: str, routing_key: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(aio_pika.Message(body), routing_key=routing_key)


async def test_a_subscriber_reads_public_events_and_cannot_publish_or_bind_internal_ones(
    amqp_vhost: Callable[[str], str],
) -> None:
    admin = amqp_vhost("subscribers")
    name = f"billing-{uuid.uuid4().hex[:6]}"  # RabbitMQ users are per node, not per vhost
    code, out, err = await _cli(admin, "subscribers", "add", name, "--max-length", "50")
    assert code == 0, err
    login = json.loads(out)
    try:
        assert login["user"] == f"subscriber-{name}"
        assert login["queue"] == f"subscriber.{name}"
        await _read_but_never_write(admin, _as(admin, login["user"], login["password"]), name)
    finally:
        api = ManagementApi.for_amqp(admin)
        async with api.session() as session, session.delete(api.url("users", login["user"])):
            pass


async def _read_but_never_write(admin: str, subscriber: str, name: str) -> None:

    # A public event published by domainflow reaches the subscriber's queue; an internal one
    # does not.
    await _publish(admin, "domain.verification_completed", b'{"internal": true}')
    await _publish(admin, "domain.status_changed", b'{"public": true}')
    connection = await aio_pika.connect(subscriber)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"subscriber.{name}", passive=True)
        message = await queue.get(timeout=10, fail=True)
        assert message is not None
        assert json.loads(message.body) == {"public": True}
        await message.ack()
        assert await queue.get(fail=False) is None

    # Forging: the internal answer the api acts on, and a public event, are both refused.
    for routing_key in ("domain.verification_completed", "domain.status_changed"):
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await _publish(subscriber, routing_key, b'{"outcome": "passed"}')

    # Nor may it bind its queue to an internal route to read commands and answers.
    connection = await aio_pika.connect(subscriber)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"subscriber.{name}", passive=True)
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await queue.bind(EVENTS_EXCHANGE, routing_key="domain.verification_completed")


async def test_a_name_that_cannot_be_a_user_is_refused_with_the_rule(
    amqp_vhost: Callable[[str], str],
) -> None:
    code, _, err = await _cli(amqp_vhost("subscribers-bad"), "subscribers", "add", "Bad Name!")
    assert code == 2
    assert "lower-case letters" in err
