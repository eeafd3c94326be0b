"""SES's request budget, shared by every verifier replica: one slot per 1/rate seconds.

Reservation style (a virtual scheduling GCRA): one atomic UPDATE hands the caller the next
free slot, `greatest(next_free_at, now())`, and pushes `next_free_at` one spacing further;
the caller sleeps until its slot and then makes its call. A slot is reserved only right
before each call, so an on-demand verify waits behind at most the few calls already
reserved, never behind the rest of a re-verification cycle. The database's clock is the
only clock, so replicas on skewed hosts still share one budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from domainflow.kit.database import Database


def reserve_slot(next_free_at: float | None, now: float, spacing: float) -> tuple[float, float]:
    """The slot a caller arriving at `now` gets, and the new `next_free_at` (pure core)."""
    slot = now if next_free_at is None else max(next_free_at, now)
    return slot, slot + spacing


class SlotStore(Protocol):
    async def reserve(self, bucket: str, spacing: float) -> float:
        """Reserve `bucket`'s next slot; seconds from now until it (<= 0: go now)."""
        ...


class MemorySlotStore:
    """One process's slots (unit tests, a single replica): the same rule without a database."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next_free: dict[str, float] = {}

    async def reserve(self, bucket: str, spacing: float) -> float:
        now = self._clock()
        slot, self._next_free[bucket] = reserve_slot(self._next_free.get(bucket), now, spacing)
        return slot - now


# One statement, one clock reading: the upsert creates a bucket on its first use.
_RESERVE = """
WITH t AS (SELECT clock_timestamp() AS now)
INSERT INTO ses_rate_slots AS s (bucket, next_free_at)
SELECT $1, t.now + make_interval(secs => $2) FROM t
ON CONFLICT (bucket) DO UPDATE
SET next_free_at = greatest(s.next_free_at, EXCLUDED.next_free_at - make_interval(secs => $2))
                   + make_interval(secs => $2)
RETURNING extract(epoch FROM (s.next_free_at - make_interval(secs => $2)
                              - (SELECT now FROM t)))::float8
"""


class PgSlotStore:
    """The shared slots, in the verifier's database (`ses_rate_slots`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, bucket: str, spacing: float) -> float:
        async with self._db.pool.acquire() as conn:
            wait = await conn.fetchval(_RESERVE, bucket, spacing)
        return float(wait)


class SesRateLimiter:
    """`await limiter.acquire(region)` right before each SES call of that account and region."""

    def __init__(
        self,
        store: SlotStore,
        rate: float,
        *,
        account: str = "default",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the SES rate must be positive")
        self._store = store
        self._spacing = 1.0 / rate
        self._account = account
        self._sleep = sleep

    def bucket(self, region: str) -> str:
        return f"ses:{self._account}:{region}"

    async def acquire(self, region: str) -> float:
        """Wait for this call's slot; returns the seconds waited."""
        wait = await self._store.reserve(self.bucket(region), self._spacing)
        if wait > 0:
            await self._sleep(wait)
            return wait
        return 0.0
