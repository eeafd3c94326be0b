"""The SES budget holds across replicas: two limiters on separate pools share one rate.

What is measured is the slot each call was given (the moment the store said "go"), not the
moment the caller's sleep ended: a loaded machine wakes sleepers late and bunches them,
which says nothing about the limiter. Lateness can only make the whole run longer, so the
lower bound on the elapsed time holds however busy the machine is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files

import pytest

from domainflow.kit.database import Database, migration_files
from domainflow.kit.runtime import kit_migrations
from domainflow.verifier.ratelimit import MemorySlotStore, PgSlotStore, SesRateLimiter, SlotStore

pytestmark = pytest.mark.integration

RATE = 10.0  # per second; high enough to keep the test short, low enough to measure
CALLERS_PER_REPLICA = 3
CALLS_PER_CALLER = 5


def _most_in_any_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


class _NotingSlots:
    """The store under test, noting on this process's clock when each granted slot falls."""

    def __init__(self, inner: SlotStore, granted: list[float]) -> None:
        self._inner = inner
        self._granted = granted

    async def reserve(self, bucket: str, spacing: float) -> float:
        wait = await self._inner.reserve(bucket, spacing)
        self._granted.append(time.monotonic() + max(wait, 0.0))
        return wait


async def _hammer(stores: list[SlotStore]) -> list[float]:
    """Every replica runs several callers at once; the slots they were given are returned."""
    granted: list[float] = []

    async def caller(limiter: SesRateLimiter) -> None:
        for _ in range(CALLS_PER_CALLER):
            await limiter.acquire("us-east-1")

    limiters = [
        SesRateLimiter(_NotingSlots(store, granted), RATE, account="123456789012")
        for store in stores
    ]
    await asyncio.gather(
        *(caller(limiter) for limiter in limiters for _ in range(CALLERS_PER_REPLICA))
    )
    return granted


async def test_two_replicas_together_stay_within_the_rate(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    url = await database_url("verifier_rate")
    migrations = [
        *kit_migrations(),
        *migration_files(files("domainflow.verifier") / "migrations"),
    ]
    first = await Database.prepare(url, migrations, size=4)
    second = await Database.connect(url, size=4)  # another replica: a pool of its own
    try:
        started = time.monotonic()
        granted = await _hammer([PgSlotStore(first), PgSlotStore(second)])
        elapsed = time.monotonic() - started
    finally:
        await first.close()
        await second.close()

    calls = 2 * CALLERS_PER_REPLICA * CALLS_PER_CALLER
    assert len(granted) == calls
    # Slots are 1/RATE apart however the callers are spread; the noting happens a database
    # round trip after the slot was handed out, so allow that much, not a second budget.
    assert _most_in_any_second(granted) <= RATE * 1.5
    assert elapsed >= (calls - 1) / RATE * 0.95
    # ...and the limiter does not starve anyone: the budget is used, not wasted.
    assert elapsed <= (calls - 1) / RATE * 2


async def test_without_a_shared_store_two_replicas_would_overspend() -> None:
    # The same harness with each replica keeping its own slots: the combined rate doubles,
    # which is what the shared table prevents (and shows this test's measure can fail).
    granted = await _hammer([MemorySlotStore(), MemorySlotStore()])
    assert _most_in_any_second(granted) > RATE * 1.5
