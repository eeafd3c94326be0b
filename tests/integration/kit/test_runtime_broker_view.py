"""What an operator sees of a replica in RabbitMQ and in `/metrics`: a named connection, its
service as `app_id` and CloudEvents attributes on what it publishes, its queues' depths.

Real PostgreSQL and RabbitMQ; the replica is the kit's `ServiceRuntime`.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable

import aio_pika
import aiohttp
import pytest
from faststream.rabbit import RabbitRouter

from domainflow.contracts import DomainDeleted
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import outbox
from domainflow.kit.messaging import subscribe
from domainflow.kit.policies import ManagementApi
from domainflow.kit.runtime import ServiceRuntime
from domainflow.kit.settings import BrokerSettings, LogSettings, ServiceSettings
from domainflow.sandbox.ports import listening_port

pytestmark = pytest.mark.integration

QUEUE = "viewtest.domain-deleted"


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_replica_is_named_its_events_carry_cloud_events_and_metrics_show_its_queues(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    url = amqp_vhost("brokerview")
    handled: list[DomainDeleted] = []

    async def on_deleted(event: DomainDeleted) -> None:
        handled.append(event)

    runtime = ServiceRuntime(
        "viewtest",
        ServiceSettings(
            broker=BrokerSettings(amqp_url=url, replica="3"),
            log=LogSettings(format="console"),
        ),
        await database_url("brokerview"),
    )
    router = RabbitRouter()
    queue = subscribe(router, "viewtest", DomainDeleted, on_deleted)
    port = listening_port()
    await runtime.open([])
    try:
        # A tap on the exchange sees the wire as any subscriber would.
        tap_connection = await aio_pika.connect(url)
        tap_channel = await tap_connection.channel()
        exchange = await tap_channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
        tap = await tap_channel.declare_queue(exclusive=True)
        await tap.bind(exchange, routing_key="#")
        await runtime.start(router, [queue])
        await runtime.serve_health("127.0.0.1", port)

        event = DomainDeleted(
            correlation_id="req-view", team_id="t", domain_id="dom_view", domain="v.example"
        )
        async with runtime.db.transaction() as conn:
            await outbox.add(conn, event)
        wire = await tap.get(timeout=30, fail=False)
        for _ in range(300):
            if wire is not None:
                break
            await asyncio.sleep(0.1)
            wire = await tap.get(fail=False)
        assert wire is not None
        assert json.loads(wire.body) == json.loads(event.model_dump_json())  # body unchanged
        assert wire.app_id == "viewtest"
        assert wire.message_id == str(event.event_id)
        assert wire.correlation_id == "req-view"
        assert wire.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        headers = wire.headers or {}
        assert headers["cloudEvents:specversion"] == "1.0"
        assert headers["cloudEvents:id"] == str(event.event_id)
        assert headers["cloudEvents:source"] == "/domainflow/viewtest"
        assert headers["cloudEvents:type"] == "domain.deleted"
        assert headers["cloudEvents:subject"] == "dom_view"
        assert headers["cloudEvents:datacontenttype"] == "application/json"
        assert headers["cloudEvents:dataschema"] == "urn:domainflow:schema:domain.deleted:v1"
        assert headers["cloudEvents:time"] == event.occurred_at.isoformat().replace("+00:00", "Z")

        async def handled_once() -> bool:
            return len(handled) == 1

        await _until(handled_once, "the event to be handled")
        # An unreadable message, parked at once, shows in the DLQ's depth.
        await exchange.publish(aio_pika.Message(b"garbled"), routing_key="domain.deleted")

        async def metrics() -> dict[str, float]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as answer,
            ):
                text = await answer.text()
            return {
                m[1]: float(m[2])
                for m in re.finditer(
                    rf'^(domainflow_\w+)\{{service="viewtest",queue="{re.escape(QUEUE)}"\}} (\S+)$',
                    text,
                    re.MULTILINE,
                )
            }

        async def parked_shows() -> bool:
            return (await metrics()).get("domainflow_dead_letter_messages") == 1

        await _until(parked_shows, "the parked message to show in /metrics")
        found = await metrics()
        assert found["domainflow_queue_messages"] == 0
        assert found["domainflow_queue_consumers"] == 1

        api = ManagementApi.for_amqp(url)

        async def named() -> bool:
            async with (
                api.session() as session,
                session.get(api.url("vhosts", api.vhost, "connections")) as answer,
            ):
                names = [c["client_properties"].get("connection_name") for c in await answer.json()]
            return f"viewtest@{socket.gethostname()}#3" in names

        await _until(named, "the replica's connection to show its name")
        await tap_connection.close()
    finally:
        await runtime.close()
