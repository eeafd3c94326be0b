"""Waiting for asynchronous work to land, on any api replica.

A trigger NOTIFYs `domainflow_domain_changed` with the domain's public id whenever its
row changes, whichever replica's consumer changed it; every replica LISTENs on one
connection (listening again after PostgreSQL restarts) and wakes the requests waiting on
that domain. A slow poll covers a notification lost while the connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from domainflow.kit.database import Database
from domainflow.kit.listener import ChannelListener

T = TypeVar("T")

_CHANNEL = "domainflow_domain_changed"


class DomainChanges:
    def __init__(self, db: Database, *, poll_interval: float = 1.0) -> None:
        self._poll = poll_interval
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener = ChannelListener(db.url, _CHANNEL, self._on_notify, self._wake_all)

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def _on_notify(self, public_id: str) -> None:
        for event in self._waiters.get(public_id, ()):
            event.set()

    def _wake_all(self) -> None:
        # Listening again after a lost connection: what changed meanwhile was not announced.
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def wait_for(
        self,
        public_id: str,
        load: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline for the whole wait, reloads included
    ) -> T:
        """Reload with `load` on every change of the domain until `done` or `timeout`."""
        event = asyncio.Event()
        self._waiters[public_id].add(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                event.clear()
                value = await load()
                remaining = deadline - loop.time()
                if done(value) or remaining <= 0:
                    return value
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, self._poll))
        finally:
            self._waiters[public_id].discard(event)
            if not self._waiters[public_id]:
                del self._waiters[public_id]
