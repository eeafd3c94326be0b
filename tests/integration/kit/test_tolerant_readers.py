"""Consumers read tolerantly: an added field is consumed, what cannot be read is parked with
its reason and a log line — never redelivered in a loop, never silently.

Real RabbitMQ, in a vhost of this module's own, through the kit's `subscribe` and the
policies a replica puts at start-up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker, RabbitRouter
from structlog.testing import capture_logs

from domainflow.contracts import DomainStatus, DomainStatusChanged
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import dead_letters
from domainflow.kit.envelope import encode
from domainflow.kit.messaging import Redelivery, declare_topology, subscribe
from domainflow.kit.policies import ManagementApi, QueueLimits, effective_policy

pytestmark = pytest.mark.integration

QUEUE = "verifier.domain-status-changed"


@dataclass
class Recorder:
    handled: list[DomainStatusChanged] = field(default_factory=list)

    async def __call__(self, event: DomainStatusChanged) -> None:
        self.handled.append(event)


@dataclass
class Bus:
    url: str
    consumer: Recorder

    async def publish_raw(self, body: bytes, **properties: Any) -> None:
        """As another release's relay (or anyone on the exchange) would publish."""
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            await exchange.publish(
                aio_pika.Message(body, content_type="application/json", **properties),
                routing_key="domain.status_changed",
            )


def _event(domain: str) -> dict[str, Any]:
    event = DomainStatusChanged(
        correlation_id=f"req-{domain}",
        team_id="team_tolerant",
        domain_id=f"dom_{domain}",
        domain=domain,
        region="us-east-1",
        old_status=DomainStatus.PENDING,
        new_status=DomainStatus.VERIFIED,
        reason="every check passed",
    )
    raw: dict[str, Any] = json.loads(encode(event))
    return raw


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _parked(url: str) -> list[dead_letters.ParkedMessage]:
    return await dead_letters.show(url, QUEUE + ".dlq")


@pytest.fixture
async def bus(amqp_vhost: Callable[[str], str]) -> AsyncIterator[Bus]:
    url = amqp_vhost("tolerant")
    consumer = Recorder()
    router = RabbitRouter()
    queues = [
        subscribe(router, "verifier", DomainStatusChanged, consumer,
                  redelivery=Redelivery(limit=3, backoff_max=0.05)),
    ]  # fmt: skip
    broker = RabbitBroker(url, logger=None)
    await broker.connect()
    await declare_topology(broker, queues, amqp_url=url, limits=QueueLimits(delivery_limit=3))
    broker.include_router(router)
    await broker.start()
    try:
        yield Bus(url, consumer)
    finally:
        await broker.stop()


async def test_an_event_with_a_field_this_reader_does_not_know_is_consumed(bus: Bus) -> None:
    raw = _event("added-field.example")
    raw["ingress_score"] = 0.97  # a field a newer writer added: same version
    await bus.publish_raw(json.dumps(raw).encode(), message_id=raw["event_id"])

    async def handled() -> bool:
        return len(bus.consumer.handled) == 1

    await _until(handled, "the event to be handled")
    assert str(bus.consumer.handled[0].event_id) == raw["event_id"]
    assert bus.consumer.handled[0].version == DomainStatusChanged.VERSION
    assert await _parked(bus.url) == []


async def test_a_newer_version_is_parked_at_once_with_a_logged_reason(bus: Bus) -> None:
    raw = _event("newer.example")
    newer = DomainStatusChanged.VERSION + 1
    raw["version"] = newer
    with capture_logs() as logs:
        await bus.publish_raw(
            json.dumps(raw).encode(),
            message_id=raw["event_id"],
            type="domain.status_changed",
            correlation_id=raw["correlation_id"],
        )

        async def parked() -> bool:
            return len(await _parked(bus.url)) == 1

        await _until(parked, "the event to be parked")
    [shown] = await _parked(bus.url)
    assert shown.reason == "unknown_version"
    assert shown.detail is not None
    assert f"version {newer}" in shown.detail
    assert shown.event_type == "domain.status_changed"
    assert shown.body == raw  # parked as it came, so it can be replayed once a reader knows it
    assert bus.consumer.handled == []
    [line] = [entry for entry in logs if entry["event"] == "event.undecodable"]
    assert line["routing_key"] == "domain.status_changed"
    assert line["reason"] == "unknown_version"
    assert line["properties"]["message_id"] == raw["event_id"]
    assert line["properties"]["correlation_id"] == raw["correlation_id"]
    assert f"version {newer}" in line["error"]


async def test_a_body_that_is_not_json_is_parked_with_its_reason_shown_by_the_cli(
    bus: Bus,
) -> None:
    with capture_logs() as logs:
        await bus.publish_raw(b"{not json", message_id="garbled-1")

        async def parked() -> bool:
            return len(await _parked(bus.url)) == 1

        await _until(parked, "the garbled message to be parked")
    [shown] = await _parked(bus.url)
    assert shown.reason == "not_json"
    assert shown.as_dict()["reason"] == "not_json"  # what `dead-letters show` prints
    assert shown.body == "{not json"
    assert any(e["event"] == "event.undecodable" and e["reason"] == "not_json" for e in logs)


async def test_a_changed_delivery_limit_applies_to_the_existing_queue_without_a_startup_failure(
    bus: Bus,
) -> None:
    api = ManagementApi.for_amqp(bus.url)

    async def limit_is(limit: int) -> bool:
        # The management API reports a queue's policy once its statistics refresh.
        return (await effective_policy(api, QUEUE)).get("delivery-limit") == limit

    await _until(lambda: limit_is(3), "the first start's policy to show")
    # A second start of the same service with another limit, as after a config change.
    router = RabbitRouter()
    queues = [subscribe(router, "verifier", DomainStatusChanged, Recorder())]
    broker = RabbitBroker(bus.url, logger=None)
    await broker.connect()
    try:
        await declare_topology(
            broker, queues, amqp_url=bus.url, limits=QueueLimits(delivery_limit=7)
        )
    finally:
        await broker.stop()
    await _until(lambda: limit_is(7), "the changed limit to apply to the existing queue")
    applied = await effective_policy(api, QUEUE)
    assert applied["dead-letter-strategy"] == "at-least-once"
    assert applied["overflow"] == "reject-publish"
    assert (await effective_policy(api, QUEUE + ".dlq")).get("max-length") == 1_000_000


async def test_a_queue_an_older_release_declared_with_a_fixed_limit_does_not_stop_start_up(
    amqp_vhost: Callable[[str], str],
) -> None:
    url = amqp_vhost("legacy-queue")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            QUEUE,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "domainflow.dead-letter",
                "x-dead-letter-routing-key": QUEUE,
                "x-delivery-limit": 5,  # what the release before policies declared
            },
        )
    router = RabbitRouter()
    queues = [subscribe(router, "verifier", DomainStatusChanged, Recorder())]
    broker = RabbitBroker(url, logger=None)
    await broker.connect()
    try:
        with capture_logs() as logs:
            await declare_topology(broker, queues, amqp_url=url, limits=QueueLimits(2))
    finally:
        await broker.stop()
    [warning] = [e for e in logs if e["event"] == "queue.arguments_differ"]
    assert warning["queue"] == QUEUE
    assert "delete the queue" in warning["advice"]
