"""The notification log in SQL: intent before the SES call, outcome after it.

`PgNotifierStore` is the handler's store (`unit_of_work.NotifierStore`) on PostgreSQL: a
delivery is one pooled connection, its settlement one transaction on it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from domainflow.contracts import Event, NotificationRequested
from domainflow.kit import inbox, outbox
from domainflow.kit.database import Connection, Database
from domainflow.notifier.domain import LogState
from domainflow.notifier.unit_of_work import LogRow


async def record_intent(conn: Connection, event: NotificationRequested, recipient: str) -> bool:
    """Insert the `sending` row; False when the recipient already has a row for the event."""
    inserted = await conn.fetchval(
        "INSERT INTO notifications"
        " (transition_event_id, recipient, domain_id, domain, new_status, state)"
        " VALUES ($1, $2, $3, $4, $5, 'sending')"
        " ON CONFLICT DO NOTHING RETURNING true",
        event.transition_event_id,
        recipient,
        event.domain_id,
        event.domain,
        event.new_status.value,
    )
    return bool(inserted)


async def find(conn: Connection, event_id: uuid.UUID, recipient: str) -> LogRow | None:
    row = await conn.fetchrow(
        "SELECT recipient, state, message_id, detail FROM notifications"
        " WHERE transition_event_id = $1 AND recipient = $2",
        event_id,
        recipient,
    )
    if row is None:
        return None
    return LogRow(row["recipient"], LogState(row["state"]), row["message_id"], row["detail"])


async def rows_for(conn: Connection, event_id: uuid.UUID) -> list[LogRow]:
    rows = await conn.fetch(
        "SELECT recipient, state, message_id, detail FROM notifications"
        " WHERE transition_event_id = $1 ORDER BY created_at, recipient",
        event_id,
    )
    return [
        LogRow(r["recipient"], LogState(r["state"]), r["message_id"], r["detail"]) for r in rows
    ]


async def _settle(
    conn: Connection,
    event_id: uuid.UUID,
    recipient: str,
    state: LogState,
    *,
    message_id: str | None = None,
    detail: str | None = None,
) -> None:
    # Only a `sending` row takes an outcome; and `sent` may also replace `unconfirmed`, for a
    # sender that lost its database mid-call (so another delivery marked it) yet came back
    # with SES's answer.
    await conn.execute(
        "UPDATE notifications SET state = $3, message_id = $4, detail = $5, updated_at = now()"
        " WHERE transition_event_id = $1 AND recipient = $2"
        " AND (state = 'sending' OR (state = 'unconfirmed' AND $3 = 'sent'))",
        event_id,
        recipient,
        state.value,
        message_id,
        detail,
    )


async def record_sent(
    conn: Connection, event_id: uuid.UUID, recipient: str, message_id: str
) -> None:
    await _settle(conn, event_id, recipient, LogState.SENT, message_id=message_id)


async def record_rejected(
    conn: Connection, event_id: uuid.UUID, recipient: str, detail: str
) -> None:
    await _settle(conn, event_id, recipient, LogState.REJECTED, detail=detail)


async def record_unconfirmed(
    conn: Connection, event_id: uuid.UUID, recipient: str, detail: str
) -> None:
    await _settle(conn, event_id, recipient, LogState.UNCONFIRMED, detail=detail)


async def forget_intent(conn: Connection, event_id: uuid.UUID, recipient: str) -> None:
    """Drop a `sending` row whose send provably did not happen, so a redelivery sends it."""
    await conn.execute(
        "DELETE FROM notifications"
        " WHERE transition_event_id = $1 AND recipient = $2 AND state = 'sending'",
        event_id,
        recipient,
    )


async def already_handled(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """True when the inbox holds the event: every recipient was settled and the result emitted."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
        )
    )


def _lock_key(event_id: uuid.UUID) -> int:
    # Any 64 bits of the id will do: a collision only makes two transitions take turns.
    return int.from_bytes(event_id.bytes[:8], "big", signed=True)


async def try_lock_transition(conn: Connection, event_id: uuid.UUID) -> bool:
    """Take the transition's session lock; PostgreSQL drops it if this replica dies.

    Holding it proves no live delivery is between intent and outcome for this transition,
    so any `sending` row we then find was left by one that is gone.
    """
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(event_id)))


async def unlock_transition(conn: Connection, event_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(event_id))


class PgNotificationLog:
    """The log's statements on one connection, each committed at once."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record_intent(self, event: NotificationRequested, recipient: str) -> bool:
        return await record_intent(self._conn, event, recipient)

    async def find(self, event_id: uuid.UUID, recipient: str) -> LogRow | None:
        return await find(self._conn, event_id, recipient)

    async def record_sent(self, event_id: uuid.UUID, recipient: str, message_id: str) -> None:
        await record_sent(self._conn, event_id, recipient, message_id)

    async def record_rejected(self, event_id: uuid.UUID, recipient: str, detail: str) -> None:
        await record_rejected(self._conn, event_id, recipient, detail)

    async def record_unconfirmed(self, event_id: uuid.UUID, recipient: str, detail: str) -> None:
        await record_unconfirmed(self._conn, event_id, recipient, detail)

    async def forget_intent(self, event_id: uuid.UUID, recipient: str) -> None:
        await forget_intent(self._conn, event_id, recipient)


class PgSettlement:
    """Inbox, log reads and outbox inside the transaction `PgDelivery.settlement` opened."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def claim(self, consumer: str, event: Event) -> bool:
        return await inbox.claim(self._conn, consumer, event)

    async def rows_for(self, event_id: uuid.UUID) -> list[LogRow]:
        return await rows_for(self._conn, event_id)

    async def emit(self, *events: Event) -> None:
        await outbox.add(self._conn, *events)


class PgDelivery:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._log = PgNotificationLog(conn)

    @property
    def log(self) -> PgNotificationLog:
        return self._log

    async def already_handled(self, consumer: str, event_id: uuid.UUID) -> bool:
        return await already_handled(self._conn, consumer, event_id)

    async def try_lock(self, event_id: uuid.UUID) -> bool:
        return await try_lock_transition(self._conn, event_id)

    async def unlock(self, event_id: uuid.UUID) -> None:
        await unlock_transition(self._conn, event_id)

    @asynccontextmanager
    async def settlement(self) -> AsyncIterator[PgSettlement]:
        async with self._conn.transaction():
            yield PgSettlement(self._conn)


class PgNotifierStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def delivery(self) -> AsyncIterator[PgDelivery]:
        # One connection for the whole delivery: the transition's session lock lives on it,
        # and PostgreSQL releases it if this process dies.
        async with self._db.pool.acquire() as conn:
            yield PgDelivery(conn)
