"""What the notifier's handler needs of its store: the log, the transition lock, inbox + outbox.

One delivery of a transition holds one `Delivery` from start to end (in PostgreSQL, one
connection: the transition's session lock lives on it). Log writes made through it commit at
once, on purpose: the `sending` intent must be durable before SES is called. The closing
`settlement` is the one transaction: the inbox claim, the reads of the settled rows and the
outbox's `NotificationSent` commit together or not at all.

`adapters.repository.PgNotifierStore` is the store in production; `in_memory.InMemoryStore`
keeps the same promises in dictionaries, for fast tests of the handler.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from domainflow.contracts import Event, NotificationRequested
from domainflow.notifier.domain import LogState


@dataclass(frozen=True)
class LogRow:
    """One (transition, recipient) row of the notification log."""

    recipient: str
    state: LogState
    message_id: str | None
    detail: str | None


class NotificationLog(Protocol):
    """The notification log: intent before the SES call, outcome after it."""

    async def record_intent(self, event: NotificationRequested, recipient: str) -> bool:
        """Insert the `sending` row; False when the recipient already has a row for the event."""
        ...

    async def find(self, event_id: uuid.UUID, recipient: str) -> LogRow | None: ...

    async def record_sent(self, event_id: uuid.UUID, recipient: str, message_id: str) -> None:
        """Only a `sending` row takes an outcome; `sent` may also replace `unconfirmed`."""
        ...

    async def record_rejected(self, event_id: uuid.UUID, recipient: str, detail: str) -> None: ...

    async def record_unconfirmed(
        self, event_id: uuid.UUID, recipient: str, detail: str
    ) -> None: ...

    async def forget_intent(self, event_id: uuid.UUID, recipient: str) -> None:
        """Drop a `sending` row whose send provably did not happen, so a redelivery sends it."""
        ...


class Settlement(Protocol):
    """The closing transaction of a delivery: all of it commits, or none of it."""

    async def claim(self, consumer: str, event: Event) -> bool:
        """Record the event in the inbox; False when it is there already."""
        ...

    async def rows_for(self, event_id: uuid.UUID) -> list[LogRow]:
        """The transition's rows, oldest first."""
        ...

    async def emit(self, *events: Event) -> None:
        """Add events to the outbox; they are published only if the settlement commits."""
        ...


class Delivery(Protocol):
    """One delivery's hold on the store, from the inbox check to the settlement."""

    @property
    def log(self) -> NotificationLog: ...

    async def already_handled(self, consumer: str, event_id: uuid.UUID) -> bool:
        """True when the inbox holds the event: every recipient was settled and announced."""
        ...

    async def try_lock(self, event_id: uuid.UUID) -> bool:
        """Take the transition's lock; False while another live delivery holds it.

        Holding it proves no live delivery is between intent and outcome for the transition,
        so any `sending` row found then was left by one that is gone. The lock goes when its
        holder does (PostgreSQL drops a dead session's locks).
        """
        ...

    async def unlock(self, event_id: uuid.UUID) -> None: ...

    def settlement(self) -> AbstractAsyncContextManager[Settlement]:
        """The one transaction: committed when the block ends, rolled back if it raises."""
        ...


class NotifierStore(Protocol):
    def delivery(self) -> AbstractAsyncContextManager[Delivery]: ...
