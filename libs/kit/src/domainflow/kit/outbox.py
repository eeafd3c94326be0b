"""The transactional outbox: events commit with the state change that caused them.

`add` only inserts, inside the caller's transaction. `OutboxRelay` claims rows with
`FOR UPDATE SKIP LOCKED` and a lease token, publishes them with publisher confirms,
and deletes only the rows it still holds, so any number of replicas can relay and a
crash between commit and publish loses nothing (it publishes twice at worst; inboxes
make that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker

from domainflow.contracts import Event
from domainflow.kit.database import Connection, Database
from domainflow.kit.envelope import encode
from domainflow.kit.listener import ChannelListener
from domainflow.kit.logging import get_logger
from domainflow.kit.messaging import EVENTS

log = get_logger(__name__)


async def add(conn: Connection, *events: Event) -> None:
    """Queue events for publishing; call inside the transaction that changes state."""
    if not events:
        return
    await conn.executemany(
        "INSERT INTO outbox (event_id, routing_key, correlation_id, body) VALUES ($1, $2, $3, $4)",
        [(e.event_id, e.TYPE, e.correlation_id, encode(e)) for e in events],
    )


@dataclass(frozen=True)
class _Row:
    id: int
    event_id: uuid.UUID
    routing_key: str
    correlation_id: str
    body: bytes


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        broker: RabbitBroker,
        *,
        batch_size: int = 200,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        self._db = db
        self._broker = broker
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._poll = poll_interval
        self._wake = asyncio.Event()

    def _on_notify(self, _payload: str = "") -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        # After a lost connection the listener wakes the relay too: rows may have been
        # committed while no notification could arrive.
        listener = ChannelListener(
            self._db.url, "domainflow_outbox", self._on_notify, self._on_notify
        )
        await listener.start()
        try:
            while True:
                # Cleared before the pass, not after: a row committed while the pass runs
                # (too late for its query) leaves the wake-up set, and the next pass is now.
                self._wake.clear()
                try:
                    while await self.relay_once() == self._batch_size:
                        pass  # a full batch: there may be more waiting
                except Exception:  # the broker or database blinked; the rows stay due
                    log.exception("outbox.relay_failed")
                    await asyncio.sleep(min(self._poll * 2, 5.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
        finally:
            await listener.stop()

    async def relay_once(self) -> int:
        """Publish one batch of due rows; returns how many were claimed."""
        token = uuid.uuid4()
        async with self._db.transaction() as conn:
            records = await conn.fetch(
                """
                WITH due AS (
                    SELECT id FROM outbox
                    WHERE leased_until IS NULL OR leased_until < now()
                    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                )
                UPDATE outbox o
                SET lease_token = $2,
                    leased_until = now() + make_interval(secs => $3),
                    attempts = o.attempts + 1
                FROM due WHERE o.id = due.id
                RETURNING o.id, o.event_id, o.routing_key, o.correlation_id, o.body
                """,
                self._batch_size,
                token,
                self._lease,
            )
        rows = sorted(
            (
                _Row(r["id"], r["event_id"], r["routing_key"], r["correlation_id"], r["body"])
                for r in records
            ),
            key=lambda r: r.id,
        )
        published: list[int] = []
        try:
            for row in rows:  # in commit order: consumers see a domain's events in sequence
                await self._broker.publish(
                    row.body,
                    exchange=EVENTS,
                    routing_key=row.routing_key,
                    persist=True,
                    mandatory=False,
                    message_id=str(row.event_id),
                    correlation_id=row.correlation_id,
                    message_type=row.routing_key,
                    content_type="application/json",
                )
                published.append(row.id)
        finally:
            if rows:
                async with self._db.transaction() as conn:
                    await conn.execute(
                        "DELETE FROM outbox WHERE id = ANY($1::bigint[]) AND lease_token = $2",
                        published,
                        token,
                    )
                    # Rows this relay could not publish (the broker went away) are due again
                    # at once: the lease is for a relay that died, not one that is still here
                    # and will retry as soon as the broker is back.
                    await conn.execute(
                        "UPDATE outbox SET leased_until = NULL, lease_token = NULL"
                        " WHERE lease_token = $2 AND id <> ALL($1::bigint[])",
                        published,
                        token,
                    )
        if rows:
            log.debug("outbox.relayed", count=len(rows))
        return len(rows)
