"""What ops graph: each service's state as Prometheus gauges, read from its database per scrape.

Queries rather than counters kept in memory: every replica of a service reports the same
truth (their shared database), a restart loses nothing, and no hot path changes. Each
service serves them at `GET /metrics` (the consumers on their health port, the api on its
own), in Prometheus' text exposition format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiormq.exceptions import AMQPError
from faststream.rabbit import Channel, RabbitBroker

from domainflow.contracts.topology import dead_letter_queue_name
from domainflow.kit.database import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Gauge:
    """`query` returns rows with a `value` column and one column per label."""

    name: str
    help: str
    query: str  # code, never input
    labels: tuple[str, ...] = ()


OUTBOX_GAUGES = (
    Gauge(
        "domainflow_outbox_pending",
        "Events committed but not yet published to RabbitMQ.",
        "SELECT count(*) AS value FROM outbox",
    ),
    Gauge(
        "domainflow_outbox_oldest_seconds",
        "Age of the oldest unpublished event; it grows while the relay is stuck.",
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS value FROM outbox",
    ),
)


def sample_value(value: float) -> str:
    """A sample as Prometheus reads it, exact: a count of 1,234,567 must not become 1.23457e+06."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def exposition(db: Database, gauges: Sequence[Gauge], service: str) -> str:
    """Every gauge, each sample labelled with the service it came from."""
    lines: list[str] = []
    async with db.pool.acquire() as conn:
        for gauge in gauges:
            lines.append(f"# HELP {gauge.name} {gauge.help}")
            lines.append(f"# TYPE {gauge.name} gauge")
            for row in await conn.fetch(gauge.query):
                labels = [f'service="{_label(service)}"']
                labels += [f'{name}="{_label(row[name])}"' for name in gauge.labels]
                lines.append(f"{gauge.name}{{{','.join(labels)}}} {sample_value(row['value'])}")
    return "\n".join(lines) + "\n"


QUEUE_GAUGES = (
    ("domainflow_queue_messages", "Messages ready or in flight in a work queue."),
    ("domainflow_queue_consumers", "Consumers attached to a work queue (0: nobody is working)."),
    ("domainflow_dead_letter_messages", "Messages parked in a work queue's DLQ."),
)


async def queue_depths(broker: RabbitBroker, queues: Sequence[str], service: str) -> str:
    """Each of the service's queues as RabbitMQ counts it now (a passive declare per queue),
    labelled by queue; a queue RabbitMQ cannot answer for is left out, not reported as 0."""
    samples: dict[str, list[str]] = {name: [] for name, _ in QUEUE_GAUGES}
    with contextlib.suppress(AMQPError, RuntimeError, OSError):
        # A channel of its own: a failed passive declare closes it, not a consumer's.
        channel = await broker.config.channel_manager.get_channel(
            Channel(publisher_confirms=False, channel_number=None, on_return_raises=False)
        )
        if channel.is_closed:
            await channel.reopen()
        for queue in queues:
            labels = f'service="{_label(service)}",queue="{_label(queue)}"'
            with contextlib.suppress(AMQPError):
                work = (await channel.declare_queue(queue, passive=True)).declaration_result
                samples["domainflow_queue_messages"].append(
                    f"domainflow_queue_messages{{{labels}}} {work.message_count or 0}"
                )
                samples["domainflow_queue_consumers"].append(
                    f"domainflow_queue_consumers{{{labels}}} {work.consumer_count or 0}"
                )
                dlq = await channel.declare_queue(dead_letter_queue_name(queue), passive=True)
                samples["domainflow_dead_letter_messages"].append(
                    f"domainflow_dead_letter_messages{{{labels}}}"
                    f" {dlq.declaration_result.message_count or 0}"
                )
    lines: list[str] = []
    for name, text in QUEUE_GAUGES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", *samples[name]]
    return "\n".join(lines) + "\n"
