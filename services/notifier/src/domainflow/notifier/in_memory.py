"""The notifier's store in memory: the log, the inbox, the outbox and the locks in dictionaries.

It keeps the promises `unit_of_work` states and the SQL keeps: a log write lands at once, the
settlement lands whole or not at all, an outcome is written only over `sending` (or `sent`
over `unconfirmed`), and a transition's lock excludes every other delivery until released.
Fast tests drive the real `NotifierHandlers` on it (cosmicpython's FakeUnitOfWork).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from domainflow.contracts import Event, NotificationRequested
from domainflow.notifier.domain import LogState
from domainflow.notifier.unit_of_work import LogRow

Key = tuple[uuid.UUID, str]


@dataclass
class InMemoryStore:
    """What the notifier's database holds, for one test."""

    #: The log, keyed by (transition, recipient), in the order rows were made.
    rows: dict[Key, LogRow] = field(default_factory=dict)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    outbox: list[Event] = field(default_factory=list)
    #: Transitions whose lock a delivery holds.
    locked: set[uuid.UUID] = field(default_factory=set)
    #: Raised by the next settlement as it commits, to show nothing of it lands.
    fail_next_settlement: BaseException | None = None

    @asynccontextmanager
    async def delivery(self) -> AsyncIterator[InMemoryDelivery]:
        delivery = InMemoryDelivery(self)
        try:
            yield delivery
        finally:  # a connection given back ends its session, and its locks with it
            self.locked -= delivery.held

    def rows_of(self, event_id: uuid.UUID) -> list[LogRow]:
        return [row for (event, _), row in self.rows.items() if event == event_id]


class InMemoryLog:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def record_intent(self, event: NotificationRequested, recipient: str) -> bool:
        key = (event.transition_event_id, recipient)
        if key in self._store.rows:
            return False
        self._store.rows[key] = LogRow(recipient, LogState.SENDING, None, None)
        return True

    async def find(self, event_id: uuid.UUID, recipient: str) -> LogRow | None:
        return self._store.rows.get((event_id, recipient))

    async def record_sent(self, event_id: uuid.UUID, recipient: str, message_id: str) -> None:
        self._settle(event_id, recipient, LogState.SENT, message_id=message_id)

    async def record_rejected(self, event_id: uuid.UUID, recipient: str, detail: str) -> None:
        self._settle(event_id, recipient, LogState.REJECTED, detail=detail)

    async def record_unconfirmed(self, event_id: uuid.UUID, recipient: str, detail: str) -> None:
        self._settle(event_id, recipient, LogState.UNCONFIRMED, detail=detail)

    async def forget_intent(self, event_id: uuid.UUID, recipient: str) -> None:
        row = self._store.rows.get((event_id, recipient))
        if row is not None and row.state is LogState.SENDING:
            del self._store.rows[(event_id, recipient)]

    def _settle(
        self,
        event_id: uuid.UUID,
        recipient: str,
        state: LogState,
        *,
        message_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        row = self._store.rows.get((event_id, recipient))
        if row is None:
            return
        if row.state is LogState.SENDING or (
            row.state is LogState.UNCONFIRMED and state is LogState.SENT
        ):
            self._store.rows[(event_id, recipient)] = replace(
                row, state=state, message_id=message_id, detail=detail
            )


class InMemorySettlement:
    """Collects the inbox claims and events; the store takes them only on commit."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.claimed: set[tuple[str, uuid.UUID]] = set()
        self.emitted: list[Event] = []

    async def claim(self, consumer: str, event: Event) -> bool:
        key = (consumer, event.event_id)
        if key in self._store.inbox or key in self.claimed:
            return False
        self.claimed.add(key)
        return True

    async def rows_for(self, event_id: uuid.UUID) -> list[LogRow]:
        return self._store.rows_of(event_id)

    async def emit(self, *events: Event) -> None:
        self.emitted.extend(events)


class InMemoryDelivery:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._log = InMemoryLog(store)
        self.held: set[uuid.UUID] = set()

    @property
    def log(self) -> InMemoryLog:
        return self._log

    async def already_handled(self, consumer: str, event_id: uuid.UUID) -> bool:
        return (consumer, event_id) in self._store.inbox

    async def try_lock(self, event_id: uuid.UUID) -> bool:
        if event_id in self._store.locked and event_id not in self.held:
            return False
        self._store.locked.add(event_id)
        self.held.add(event_id)
        return True

    async def unlock(self, event_id: uuid.UUID) -> None:
        if event_id in self.held:
            self.held.discard(event_id)
            self._store.locked.discard(event_id)

    @asynccontextmanager
    async def settlement(self) -> AsyncIterator[InMemorySettlement]:
        settlement = InMemorySettlement(self._store)
        yield settlement  # an exception in the block skips the commit below: a rollback
        failure, self._store.fail_next_settlement = self._store.fail_next_settlement, None
        if failure is not None:
            raise failure
        self._store.inbox |= settlement.claimed
        self._store.outbox.extend(settlement.emitted)
