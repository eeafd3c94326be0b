"""The idempotent consumer: an event changes a service's state at most once.

`claim` runs in the same transaction as the effect; a redelivered event hits the
primary key and the handler skips it (pyeventsourcing's tracking records, in SQL).
"""

from domainflow.contracts import Event
from domainflow.kit.database import Connection


async def claim(conn: Connection, consumer: str, event: Event) -> bool:
    """True the first time `consumer` sees `event`; False on every redelivery."""
    row = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event.event_id,
        event.TYPE,
    )
    return bool(row)
