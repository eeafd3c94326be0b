"""What ops graph: each service's state as Prometheus gauges, read from its database per scrape.

Queries rather than counters kept in memory: every replica of a service reports the same
truth (their shared database), a restart loses nothing, and no hot path changes. Each
service serves them at `GET /metrics` (the consumers on their health port, the api on its
own), in Prometheus' text exposition format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
