"""Waiting, at start, for the servers a replica needs to accept connections.

A replica that dies because PostgreSQL or RabbitMQ is not up yet (both booting with it, a
broker restart during a deploy) comes back only if something restarts it. Refused and
reset connections, and a PostgreSQL still starting, are retried with backoff until
`DOMAINFLOW_STARTUP_TIMEOUT`; what waiting cannot mend (wrong credentials, a missing
database role, a bad migration) fails at once.
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

#: What a server that is down, starting or full answers; anything else is not ours to wait out.
NOT_YET_REACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; aiormq's AMQPConnectionError is one too
    TimeoutError,
    asyncpg.CannotConnectNowError,  # "the database system is starting up"
    asyncpg.TooManyConnectionsError,
)


def worth_waiting_for(failure: BaseException) -> bool:
    if isinstance(failure, ProbableAuthenticationError):
        return False  # RabbitMQ closed on the credentials: waiting will not change them
    return isinstance(failure, NOT_YET_REACHABLE)


async def until_reachable(
    server: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    within: float,
    first_pause: float = 0.2,
    longest_pause: float = 5.0,
) -> T:
    """`attempt()` until it succeeds, retrying only failures `worth_waiting_for`, for up to
    `within` seconds; then the last failure is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = first_pause
    while True:
        try:
            return await attempt()
        except Exception as failure:
            if not worth_waiting_for(failure) or loop.time() + pause > deadline:
                raise
            log.warning("startup.waiting", server=server, error=str(failure), retry_in=pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest_pause)
