"""The transactional outbox: events commit with the state change that caused them.

`add` only inserts, inside the caller's transaction. `OutboxRelay` claims rows with
`FOR UPDATE SKIP LOCKED` and a lease token, publishes them with publisher confirms,
and deletes only the rows it still holds, so any number of replicas can relay and a
crash between commit and publish loses nothing (it publishes twice at worst; inboxes
make that harmless). With tracing on, a row keeps the trace context of the transaction
that wrote it, and the relay publishes it as the message's `traceparent`.

A batch is published pipelined: every event of it is sent in commit order on one channel
and the broker's confirms are awaited together, not one round trip each. RabbitMQ keeps a
channel's order into each queue, so a domain's events arrive in commit order. When the
broker refuses one (a full queue), that domain's later events of the batch stay in the
outbox too and go again after it on the next pass: a subscriber may see one of them twice
(its inbox, or the sequence number, drops the copy) but never before the one it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiormq
import msgspec
from aio_pika.abc import AbstractRobustChannel, FieldValue
from faststream.rabbit import Channel, RabbitBroker
from opentelemetry.trace import Span
from pamqp import commands as spec

from domainflow.contracts import Event
from domainflow.kit import tracing
from domainflow.kit.amqp_wire import RelayProperties
from domainflow.kit.database import Connection, Database
from domainflow.kit.envelope import cloud_event_headers, encode
from domainflow.kit.listener import ChannelListener
from domainflow.kit.logging import get_logger
from domainflow.kit.messaging import EVENTS

log = get_logger(__name__)


async def add(conn: Connection, *events: Event) -> None:
    """Queue events for publishing; call inside the transaction that changes state."""
    if not events:
        return
    context = tracing.trace_context()  # empty unless tracing is on
    if context:
        await conn.executemany(
            "INSERT INTO outbox (event_id, routing_key, correlation_id, body, traceparent,"
            " tracestate) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (
                    e.event_id,
                    e.TYPE,
                    e.correlation_id,
                    encode(e),
                    context.get(tracing.TRACEPARENT),
                    context.get(tracing.TRACESTATE),
                )
                for e in events
            ],
        )
        return
    await conn.executemany(
        "INSERT INTO outbox (event_id, routing_key, correlation_id, body) VALUES ($1, $2, $3, $4)",
        [(e.event_id, e.TYPE, e.correlation_id, encode(e)) for e in events],
    )


@dataclass
class _Row:
    id: int
    event_id: uuid.UUID
    routing_key: str
    correlation_id: str
    body: bytes
    #: The W3C trace context stored with the row (None: written with tracing off).
    traceparent: str | None = None
    tracestate: str | None = None

    @functools.cached_property
    def fields(self) -> dict[str, Any]:
        """The event's flat JSON fields (read once: the domain and the CloudEvents headers
        both come from them)."""
        return _fields(self.body)


class _Head(msgspec.Struct):
    """The few fields the relay reads from a body: the rest (records, a snapshot: most of a
    status change's bytes) is skipped by the parser, never built into Python objects."""

    event_id: Any = ""
    occurred_at: Any = ""
    version: Any = 1
    domain_id: Any = None


_read_head = msgspec.json.Decoder(_Head).decode


def _fields(body: bytes) -> dict[str, Any]:
    """The fields of `body` the relay uses (the CloudEvents attributes and the domain), with
    what a body missing one stands for; {} for a body that is not a JSON object."""
    try:
        head = _read_head(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return {
        "event_id": head.event_id,
        "occurred_at": head.occurred_at,
        "version": head.version,
        "domain_id": head.domain_id,
    }


def domain_of(row: _Row) -> str:
    """The domain a row concerns, which its order is kept within (a row naming no domain
    is a domain of its own: nothing needs to follow it)."""
    domain_id = row.fields.get("domain_id")
    return domain_id if isinstance(domain_id, str) else f"row:{row.id}"


def confirmed_in_order(rows: Sequence[_Row], confirmed: Sequence[bool]) -> list[int]:
    """Ids of the rows that may leave the outbox: each confirmed row no earlier row of its
    domain failed before (those go again, after the failed one)."""
    blocked: set[str] = set()
    done: list[int] = []
    for row, ok in zip(rows, confirmed, strict=True):
        domain = domain_of(row)
        if ok and domain not in blocked:
            done.append(row.id)
        elif not ok:
            blocked.add(domain)
    return done


class PublishRefusedError(RuntimeError):
    """Some events of a batch were not confirmed; they stay in the outbox for the next pass."""


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        broker: RabbitBroker,
        *,
        batch_size: int = 200,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        service: str = "domainflow",
    ) -> None:
        self._db = db
        self._broker = broker
        self._service = service
        self._channel: AbstractRobustChannel | None = None
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
                    await self.drain()
                except Exception:  # the broker or database blinked; the rows stay due
                    log.exception("outbox.relay_failed")
                    await asyncio.sleep(min(self._poll * 2, 5.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
        finally:
            await listener.stop()

    async def drain(self) -> None:
        """Relay batches until one comes back short of full. While a batch is published, the
        next is claimed and the one before is settled (its rows deleted), so the broker is
        not kept waiting on the database; a batch is published only once the one before it
        is confirmed, so order holds across batches, and a failure gives it back unpublished."""
        ahead: asyncio.Future[tuple[uuid.UUID, list[_Row]]] | None = asyncio.ensure_future(
            self._claim()
        )
        settling: asyncio.Future[None] | None = None
        try:
            while ahead is not None:
                token, rows = await ahead
                full = len(rows) == self._batch_size
                ahead = asyncio.ensure_future(self._claim()) if full else None
                published = await self._publish_claimed(token, rows)
                if settling is not None:
                    await settling
                settling = asyncio.ensure_future(self._settle(token, rows, published))
                if len(published) < len(rows):
                    await settling  # raises: the rest waits for the next pass, in order
            if settling is not None:
                await settling
        finally:
            if settling is not None and not settling.done():
                await asyncio.wait([settling])
            if ahead is not None:
                await self._give_back(ahead)

    async def _give_back(self, claim: asyncio.Future[tuple[uuid.UUID, list[_Row]]]) -> None:
        """Return a claimed batch, unpublished, to the outbox (due again at once)."""
        if not claim.done():
            claim.cancel()  # its transaction rolls back: nothing was claimed
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([claim])
        if claim.cancelled() or claim.exception() is not None:
            return
        token, _ = claim.result()
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET leased_until = NULL, lease_token = NULL WHERE lease_token = $1",
                token,
            )

    async def relay_once(self) -> int:
        """Publish one batch of due rows; returns how many were claimed."""
        token, rows = await self._claim()
        await self._relay(token, rows)
        return len(rows)

    async def _claim(self) -> tuple[uuid.UUID, list[_Row]]:
        """Lease the oldest due rows to this relay, in commit order."""
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
                RETURNING o.id, o.event_id, o.routing_key, o.correlation_id, o.body,
                          o.traceparent, o.tracestate
                """,
                self._batch_size,
                token,
                self._lease,
            )
        rows = sorted(
            (
                _Row(
                    r["id"],
                    r["event_id"],
                    r["routing_key"],
                    r["correlation_id"],
                    r["body"],
                    r["traceparent"],
                    r["tracestate"],
                )
                for r in records
            ),
            key=lambda r: r.id,
        )
        return token, rows

    async def _relay(self, token: uuid.UUID, rows: list[_Row]) -> None:
        """Publish claimed rows, then delete those confirmed and give the others back."""
        await self._settle(token, rows, await self._publish_claimed(token, rows))

    async def _publish_claimed(self, token: uuid.UUID, rows: list[_Row]) -> list[int]:
        """Publish claimed rows; the ids of those that may leave the outbox."""
        if not rows:
            return []
        try:
            return confirmed_in_order(rows, await self._publish_pipelined(rows))
        except BaseException:  # nothing known confirmed: every row is given back
            await asyncio.shield(self._settle(token, rows, [], quiet=True))
            raise

    async def _settle(
        self, token: uuid.UUID, rows: list[_Row], published: list[int], *, quiet: bool = False
    ) -> None:
        """Delete the published rows this relay still holds and make the others due again;
        raises `PublishRefusedError` when some were not published."""
        if not rows:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[]) AND lease_token = $2",
                published,
                token,
            )
            # Rows this relay could not publish (the broker went away, or refused them) are
            # due again at once: the lease is for a relay that died, not one that is still
            # here and will retry as soon as the broker is back.
            await conn.execute(
                "UPDATE outbox SET leased_until = NULL, lease_token = NULL"
                " WHERE lease_token = $2 AND id <> ALL($1::bigint[])",
                published,
                token,
            )
        log.debug("outbox.relayed", count=len(published), claimed=len(rows))
        if len(published) < len(rows) and not quiet:
            raise PublishRefusedError(
                f"{len(rows) - len(published)} of {len(rows)} events were not confirmed"
            )

    async def _publish_pipelined(self, rows: Sequence[_Row]) -> list[bool]:
        """Send every row in order, then await all the confirms; True for each confirmed.

        The publishes are tasks started in commit order, straight on the channel (whose lock
        is first come, first served), so their frames go out in that order."""
        if self._channel is None:  # robust: it comes back by itself after a reconnect
            self._channel = await self._broker.config.channel_manager.get_channel(
                Channel(publisher_confirms=True)
            )
        # The concrete aiormq channel: its publish can queue frames without awaiting each.
        channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        spans = [self._span(row) for row in rows] if tracing.enabled() else None
        sends = [
            asyncio.ensure_future(
                channel.basic_publish(
                    row.body,
                    exchange=EVENTS.name,
                    routing_key=row.routing_key,
                    properties=self._properties(row, spans[i] if spans else None),
                    mandatory=False,
                    # Queue the frames without waiting for each to reach the socket: the
                    # confirm is what is awaited, and the writer sends many in one go.
                    wait=False,
                )
            )
            for i, row in enumerate(rows)
        ]
        results = await asyncio.gather(*sends, return_exceptions=True)
        confirmed = [isinstance(r, spec.Basic.Ack) for r in results]
        for span, result in zip(spans or (), results, strict=False):
            if span is not None:
                tracing.end(span, None if isinstance(result, spec.Basic.Ack) else repr(result))
        for row, result in zip(rows, results, strict=True):
            if not isinstance(result, spec.Basic.Ack):
                log.warning(
                    "outbox.publish_refused",
                    event_id=str(row.event_id),
                    routing_key=row.routing_key,
                    answer=repr(result),
                )
        return confirmed

    def _span(self, row: _Row) -> Span | None:
        """The span of publishing `row`, in the trace that wrote it (none for a row written
        with tracing off: a publish is not a unit of work of its own)."""
        if row.traceparent is None:
            return None
        stored = {tracing.TRACEPARENT: row.traceparent, tracing.TRACESTATE: row.tracestate}
        return tracing.publishing(
            stored,
            EVENTS.name,
            {
                "messaging.rabbitmq.destination.routing_key": row.routing_key,
                "messaging.message.id": str(row.event_id),
            },
        )

    def _properties(self, row: _Row, span: Span | None = None) -> spec.Basic.Properties:
        headers: dict[str, FieldValue] = dict(
            cloud_event_headers(self._service, row.routing_key, row.fields)
        )
        if span is not None:
            headers.update(tracing.headers_of(span))
        elif row.traceparent is not None:  # tracing is off here: pass the stored context on
            headers[tracing.TRACEPARENT] = row.traceparent
            if row.tracestate:
                headers[tracing.TRACESTATE] = row.tracestate
        return RelayProperties(
            content_type="application/json",
            delivery_mode=2,  # persistent
            message_id=str(row.event_id),
            correlation_id=row.correlation_id,
            message_type=row.routing_key,
            app_id=self._service,
            headers=headers,
        )
