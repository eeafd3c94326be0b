"""LISTEN on a PostgreSQL channel for as long as the service runs, across server restarts.

A LISTEN lives on one connection; when PostgreSQL restarts, that connection is gone and
with it every wake-up: the outbox relay and the api's waiting requests fall back to their
polls, and every POST answers a second or two late until the replica is restarted. The
listener notices its connection ending, connects again with backoff, and then tells its
owner to look again, since notifications sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

from domainflow.kit.logging import get_logger
from domainflow.kit.outages import is_outage, through_outages

log = get_logger(__name__)


class ChannelListener:
    """Calls `on_notify(payload)` for each NOTIFY on `channel`, and `on_resumed()` each time
    listening starts again after its connection was lost."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[str], None],
        on_resumed: Callable[[], None],
        *,
        longest_pause: float = 5.0,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_notify = on_notify
        self._on_resumed = on_resumed
        self._longest_pause = longest_pause
        self._conn: asyncpg.Connection[Any] | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._stopped = False
        #: Times listening started again after a lost connection (each is also logged).
        self.resumptions = 0

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Listen; if PostgreSQL is away right now, keep trying in the background."""
        try:
            await self._listen()
        except Exception as failure:
            if not is_outage(failure):
                raise
            self._on_lost(None)

    async def stop(self) -> None:
        self._stopped = True
        if self._resuming is not None:
            self._resuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resuming
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            await conn.add_listener(self._channel, self._deliver)
        except BaseException:
            await conn.close(timeout=5)
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._on_notify(str(payload))

    def _on_lost(self, _conn: Any) -> None:
        # asyncpg calls this soon after the connection ended (or was closed by stop()).
        if self._stopped or self._resuming is not None:
            return  # a resumption already running looks at the connection it ends with
        log.warning("listener.lost", channel=self._channel)
        self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        try:
            while not self._stopped and not self.listening:
                await through_outages(
                    "postgresql",
                    self._listen,
                    within=float("inf"),
                    longest_pause=self._longest_pause,
                )
                self.resumptions += 1
                log.info("listener.resumed", channel=self._channel)
                self._on_resumed()
        except Exception:
            log.exception("listener.gave_up", channel=self._channel)
        finally:
            self._resuming = None
