"""A failing consumer parks the event in its own DLQ; ops see it and replay it after a fix.

Real RabbitMQ, in a vhost of this module's own; the consumers are the kit's `subscribe`
with handlers the test can break and mend, so every path of a poison message is reached.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker, RabbitRouter

from domainflow.contracts import DomainStatus, DomainStatusChanged
from domainflow.kit import dead_letters
from domainflow.kit.envelope import encode
from domainflow.kit.messaging import EVENTS, Redelivery, declare_topology, subscribe
from domainflow.kit.policies import QueueLimits

pytestmark = pytest.mark.integration

DELIVERY_LIMIT = 2
#: The consumer that fails, and another queue bound to the same event, which must not hear
#: a replay (RabbitMQ's own binding: not a consumer in the subscription table).
WORK_QUEUE = "verifier.domain-status-changed"
BYSTANDER_QUEUE = "bystander.domain-status-changed"


@dataclass
class Consumer:
    """A handler that fails while `broken`, noting every delivery it saw."""

    broken: bool = False
    deliveries: list[str] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)

    async def __call__(self, event: DomainStatusChanged) -> None:
        self.deliveries.append(str(event.event_id))
        if self.broken:
            raise RuntimeError("the provider is down")
        self.handled.append(str(event.event_id))


@dataclass
class Bus:
    url: str
    broker: RabbitBroker
    worker: Consumer
    bystander: Consumer

    async def publish(self, event: DomainStatusChanged) -> None:
        # As the outbox relay publishes: to the events exchange, keyed by type.
        await self.broker.publish(
            encode(event),
            exchange=EVENTS,
            routing_key=event.type,
            persist=True,
            message_id=str(event.event_id),
            correlation_id=event.correlation_id,
            message_type=event.type,
            content_type="application/json",
        )


def _status_changed(domain: str) -> DomainStatusChanged:
    return DomainStatusChanged(
        correlation_id=f"req-{domain}",
        team_id="team_deadletters",
        domain_id=f"dom_{domain}",
        domain=domain,
        region="us-east-1",
        old_status=DomainStatus.VERIFIED,
        new_status=DomainStatus.FAILED,
        reason="records missing",
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _depth(url: str, queue: str) -> int | None:
    """Messages in a queue outside the subscription table (which `dead_letters` knows)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count


async def _parked(url: str, queue: str) -> int | None:
    counts = {entry.queue: entry.parked for entry in await dead_letters.parked(url)}
    return counts[queue]


@pytest.fixture
async def bus(amqp_vhost: Callable[[str], str]) -> AsyncIterator[Bus]:
    url = amqp_vhost("deadletters")
    worker, bystander = Consumer(), Consumer()
    router = RabbitRouter()
    queues = [
        subscribe(router, "verifier", DomainStatusChanged, worker,
                  redelivery=Redelivery(limit=DELIVERY_LIMIT, backoff_max=0.05)),
        subscribe(router, "bystander", DomainStatusChanged, bystander,
                  redelivery=Redelivery(limit=DELIVERY_LIMIT, backoff_max=0.05)),
    ]  # fmt: skip
    broker = RabbitBroker(url, logger=None)
    await broker.connect()
    await declare_topology(
        broker, queues, amqp_url=url, limits=QueueLimits(delivery_limit=DELIVERY_LIMIT)
    )
    broker.include_router(router)
    await broker.start()
    try:
        yield Bus(url, broker, worker, bystander)
    finally:
        await broker.stop()


async def test_a_poison_event_is_parked_shown_and_replayed_to_its_own_queue_only(
    bus: Bus,
) -> None:
    bus.worker.broken = True
    event = _status_changed("parked.example")
    await bus.publish(event)

    async def parked_once() -> bool:
        return await _parked(bus.url, WORK_QUEUE) == 1

    await _until(parked_once, "the verifier's DLQ to hold the event")
    # Tried once and redelivered up to the limit, then parked; the verifier was untouched.
    assert bus.worker.deliveries == [str(event.event_id)] * (DELIVERY_LIMIT + 1)
    assert bus.worker.handled == []
    assert bus.bystander.handled == [str(event.event_id)]
    assert await _depth(bus.url, BYSTANDER_QUEUE + ".dlq") == 0

    shown = await dead_letters.show(bus.url, WORK_QUEUE + ".dlq")
    assert [m.event_id for m in shown] == [str(event.event_id)]
    assert shown[0].event_type == "domain.status_changed"
    assert shown[0].correlation_id == event.correlation_id
    assert shown[0].reason == "delivery_limit"
    assert shown[0].body["domain"] == "parked.example"
    assert shown[0].replays == 0
    assert await _parked(bus.url, WORK_QUEUE) == 1  # showing leaves it parked

    bus.worker.broken = False  # the cause is mended
    assert await dead_letters.replay(bus.url, WORK_QUEUE) == 1

    async def handled() -> bool:
        return bus.worker.handled == [str(event.event_id)]

    await _until(handled, "the replayed event to be handled")
    assert await _parked(bus.url, WORK_QUEUE) == 0
    await asyncio.sleep(0.5)  # time enough for a stray copy to reach the verifier
    assert bus.bystander.handled == [str(event.event_id)]  # only the failing consumer saw it again


async def test_a_replay_that_fails_again_parks_once_and_is_not_looped(bus: Bus) -> None:
    bus.worker.broken = True
    first, second = _status_changed("one.example"), _status_changed("two.example")
    await bus.publish(first)
    await bus.publish(second)

    async def both_parked() -> bool:
        return await _parked(bus.url, WORK_QUEUE) == 2

    await _until(both_parked, "both events to be parked")
    # Replaying one while the cause persists: it fails again and comes back, once.
    assert await dead_letters.replay(bus.url, WORK_QUEUE, limit=1) == 1

    async def back_again() -> bool:
        shown = await dead_letters.show(bus.url, WORK_QUEUE)
        return len(shown) == 2 and any(m.replays == 1 for m in shown)

    await _until(back_again, "the replayed event to be parked again")
    shown = await dead_letters.show(bus.url, WORK_QUEUE)
    assert sorted(m.replays for m in shown) == [0, 1]
    assert bus.worker.handled == []


async def test_unknown_queues_are_refused_with_the_list_of_real_ones(bus: Bus) -> None:
    with pytest.raises(dead_letters.UnknownQueueError, match=WORK_QUEUE):
        await dead_letters.replay(bus.url, "notifier.no-such-event")
    assert dead_letters.work_queue(WORK_QUEUE + ".dlq") == WORK_QUEUE


async def test_the_cli_lists_shows_and_replays(bus: Bus) -> None:
    bus.worker.broken = True
    event = _status_changed("cli.example")
    await bus.publish(event)

    async def parked_once() -> bool:
        return await _parked(bus.url, WORK_QUEUE) == 1

    await _until(parked_once, "the event to be parked")

    async def run(*argv: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "domainflow.cli", *argv,
            env={**os.environ, "DOMAINFLOW_AMQP_URL": bus.url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, _ = await run("dead-letters", "list")
    assert code == 0
    lines = dict(line.split() for line in out.splitlines() if "not declared" not in line)
    assert lines[WORK_QUEUE + ".dlq"] == "1"
    assert "provisioner.domain-requested.dlq" in out  # never started here: shown as such

    code, out, _ = await run("dead-letters", "show", WORK_QUEUE)
    assert code == 0
    assert json.loads(out)["event_id"] == str(event.event_id)

    code, _, err = await run("dead-letters", "replay", "nope")
    assert code == 2
    assert "no consumer queue named 'nope'" in err

    bus.worker.broken = False
    code, out, _ = await run("dead-letters", "replay", WORK_QUEUE)
    assert (code, out.strip()) == (0, f"replayed 1 message(s) onto {WORK_QUEUE}")
