"""Telling a server that is away from a message that is bad, and waiting the first out.

A replica starting before PostgreSQL or RabbitMQ accepts connections, and a consumer whose
handler failed because PostgreSQL restarted, both face an outage that passes by itself.
Handing such an event back to RabbitMQ would count it against the delivery limit, and a
restart longer than the few seconds of redelivery backoff would park every event in flight
in a DLQ, as if each were poison. Refused, reset and dropped connections, timeouts, and a
PostgreSQL starting, shutting down or full are waited out with backoff; wrong credentials
and every other failure are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiormq.exceptions import ProbableAuthenticationError

from domainflow.kit.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

#: What a server that is away, starting or full answers; anything else is not ours to wait out.
OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; aiormq's AMQPConnectionError is one too
    TimeoutError,
    asyncpg.PostgresConnectionError,  # the connection dropped mid-query
    asyncpg.CannotConnectNowError,  # "the database system is starting up"
    asyncpg.AdminShutdownError,  # a restart terminates every session
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


#: Failures that look like an outage but that no wait mends: refused credentials, and the
#: file system's OSErrors (a handler's own bug or setup).
NOT_OUTAGES: tuple[type[BaseException], ...] = (
    ProbableAuthenticationError,  # RabbitMQ closed on the credentials
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_outage(failure: BaseException) -> bool:
    return isinstance(failure, OUTAGES) and not isinstance(failure, NOT_OUTAGES)


async def through_outages(
    server: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    within: float,
    first_pause: float = 0.2,
    longest_pause: float = 5.0,
) -> T:
    """`attempt()` until it succeeds, retrying failures that are outages for up to `within`
    seconds; then, or on any other failure, the failure is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = first_pause
    while True:
        try:
            return await attempt()
        except Exception as failure:
            if not is_outage(failure) or loop.time() + pause > deadline:
                raise
            log.warning("outage.waiting", waiting_for=server, error=repr(failure), retry_in=pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest_pause)
