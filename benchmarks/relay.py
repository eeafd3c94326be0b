"""Benchmark: the outbox relay draining a backlog, beside raw aio-pika on the same broker.

Seeds N outbox rows (default 10,000; four events each for N/4 domains, as a backlog after
an outage looks) into a scratch database, then in one run, against one scratch vhost with
one quorum queue bound to every event:

- raw: aio-pika publishing the same N bodies, persistent, with publisher confirms and at
  most 100 publishes in flight (the broker's speed for this client);
- relay: `OutboxRelay.relay_once` until the outbox is empty (claim, publish, delete).

The two alternate for `--rounds` rounds (default 5), so that load from elsewhere on the
machine falls on both alike; it prints the median of the rounds' ratios relay/raw (the
target is 0.8 or more), each one's median rate, and every round's figures. Run:

    .venv/bin/python benchmarks/relay.py [--rows 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any
from urllib.parse import quote

import aio_pika

from domainflow.contracts import DomainStatus, DomainStatusChanged
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import outbox
from domainflow.kit.database import Database, drop_database, ensure_database
from domainflow.kit.envelope import encode
from domainflow.kit.logging import configure_logging
from domainflow.kit.messaging import broker_for
from domainflow.kit.outbox import OutboxRelay
from domainflow.kit.policies import ManagementApi
from domainflow.kit.runtime import kit_migrations
from domainflow.kit.settings import DEFAULT_POSTGRES, ServiceSettings

IN_FLIGHT = 100
#: The relay's batch, as a replica runs it (DOMAINFLOW_OUTBOX_BATCH_SIZE).
BATCH = ServiceSettings().outbox.batch_size
QUEUE = "bench.relay"


def events(rows: int, run: str) -> list[DomainStatusChanged]:
    statuses = [DomainStatus.PROVISIONING, DomainStatus.PENDING, DomainStatus.VERIFIED]
    made = []
    for i in range(rows):
        domain, step = divmod(i, 4)
        made.append(
            DomainStatusChanged(
                correlation_id=f"bench-{run}-{domain}",
                team_id="team_bench",
                domain_id=f"dom_{run}_{domain:06d}",
                domain=f"mail.d{domain:06d}.example",
                region="us-east-1",
                old_status=statuses[step % 3],
                new_status=statuses[(step + 1) % 3],
                reason="benchmark",
            )
        )
    return made


async def scratch_vhost(api: ManagementApi, vhost: str, *, drop: bool = False) -> None:
    async with api.session() as session:
        if drop:
            async with session.delete(api.url("vhosts", vhost)):
                return
        async with session.put(api.url("vhosts", vhost)) as answer:
            answer.raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        async with session.put(api.url("permissions", vhost, api.user), json=permissions) as ok:
            ok.raise_for_status()


async def raw_publish(url: str, bodies: list[bytes]) -> float:
    """Seconds for aio-pika to publish every body, IN_FLIGHT at a time, each confirmed."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(body: bytes) -> None:
            async with slots:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="domain.status_changed",
                )

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - started


async def relay_drain(db: Database, url: str) -> float:
    """Seconds for the relay to publish and delete every outbox row."""
    broker = broker_for(url, prefetch=1, name="bench@relay#1", app_id="bench")
    await broker.connect()
    try:
        relay = OutboxRelay(db, broker, service="bench", batch_size=BATCH)
        started = time.perf_counter()
        await relay.drain()  # what the running relay does on each wake-up
        return time.perf_counter() - started
    finally:
        await broker.stop()


async def bench(rows: int, rounds: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    settings = ServiceSettings()
    api = ManagementApi.for_amqp(settings.broker.amqp_url, settings.broker.management_url)
    vhost = f"domainflow-bench-{run}"
    root = settings.broker.amqp_url.rstrip("/")
    url = f"{root.rsplit('/', 1)[0] if root.count('/') > 2 else root}/{quote(vhost, safe='')}"
    db_url = f"{DEFAULT_POSTGRES}/dfbench_relay_{run}"
    await scratch_vhost(api, vhost)
    await ensure_database(db_url)
    db = await Database.prepare(db_url, kit_migrations(), size=4)
    try:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
            queue = await channel.declare_queue(
                QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange, routing_key="#")
            raw_rates: list[float] = []
            relay_rates: list[float] = []
            for round_no in range(rounds):
                batch = events(rows, f"{run}r{round_no}")
                raw_rates.append(rows / await raw_publish(url, [encode(e) for e in batch]))
                await queue.purge()
                for start in range(0, rows, 1000):
                    async with db.transaction() as conn:
                        await outbox.add(conn, *batch[start : start + 1000])
                relay_rates.append(rows / await relay_drain(db, url))
                delivered = (await channel.declare_queue(QUEUE, passive=True)).declaration_result
                await queue.purge()
            async with db.pool.acquire() as conn:
                left = await conn.fetchval("SELECT count(*) FROM outbox")
        ratios = [b / a for a, b in zip(raw_rates, relay_rates, strict=True)]
        return {
            "rows": rows,
            "in_flight_raw": IN_FLIGHT,
            "raw_events_per_second": round(statistics.median(raw_rates)),
            "relay_events_per_second": round(statistics.median(relay_rates)),
            "ratio": round(statistics.median(ratios), 2),
            "rounds": [
                {"raw": round(a), "relay": round(b), "ratio": round(b / a, 2)}
                for a, b in zip(raw_rates, relay_rates, strict=True)
            ],
            "target": 0.8,
            "relayed_into_queue": delivered.message_count,
            "left_in_outbox": left,
        }
    finally:
        await db.close()
        await drop_database(db_url)
        await scratch_vhost(api, vhost, drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    print(json.dumps(asyncio.run(bench(args.rows, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
