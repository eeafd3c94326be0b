"""The SES budget's queue in PostgreSQL: a quiet team's call is served ahead of a backlog.

Two replicas (two pools on the budget's database) share one bucket. Callers of a team with a
backlog queue for its slots; a quiet team's call, asked while they wait, takes the next slot
that is not booked yet instead of the one after every queued call. Each call's slot is read
as when it asked plus what `acquire` says it waited, so a late wake-up on a busy host does not
reorder them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from domainflow.kit.database import Database
from domainflow.kit.ses_budget import (
    Ask,
    PgSlotStore,
    Reservation,
    SesBudget,
    open_budget_database,
    quiet_caller,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"
RATE = 2.0  # slots half a second apart: wide enough for a busy host's wake-ups
BACKLOG = 8


@pytest.fixture
async def budget_db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    db = await open_budget_database(await database_url("ses_budget_queue"), size=4)
    yield db
    await db.close()


class AskingStore(PgSlotStore):
    """The shared slots, telling the test when a caller's first try is in (it is queued)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.tried = asyncio.Event()

    async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
        try:
            return await super().reserve(bucket, spacing, ask)
        finally:
            self.tried.set()


class Served:
    """The slot each named call was given (loop time), as the budget told its caller."""

    def __init__(self) -> None:
        self.slots: dict[str, float] = {}
        self.two = asyncio.Event()  # two calls served

    async def call(self, budget: SesBudget, name: str, *, quiet: bool = False) -> None:
        asked = asyncio.get_running_loop().time()
        with quiet_caller(quiet):
            waited = await budget.acquire(REGION)
        self.slots[name] = asked + waited
        if len(self.slots) >= 2:
            self.two.set()

    def order(self) -> list[str]:
        return sorted(self.slots, key=self.slots.__getitem__)


async def _backlog_then_quiet(
    budgets: list[tuple[SesBudget, AskingStore]], quiet_budget: SesBudget
) -> Served:
    served = Served()
    backlog = []
    for i in range(BACKLOG):  # asked in this order, alternating between the replicas
        budget, store = budgets[i % 2]
        store.tried.clear()
        backlog.append(asyncio.create_task(served.call(budget, f"backlog{i}")))
        await store.tried.wait()  # in the queue before the next one asks
    await served.two.wait()  # two of the backlog served, six still queued
    await served.call(quiet_budget, "quiet", quiet=True)
    await asyncio.gather(*backlog)
    return served


def _budget(
    db: Database, account: str, quiet_head_start: float = 30.0
) -> tuple[SesBudget, AskingStore]:
    store = AskingStore(db)
    budget = SesBudget(
        store, rate=RATE, send_rate=RATE, account=account, quiet_head_start=quiet_head_start
    )
    return budget, store


async def test_a_quiet_teams_call_is_served_ahead_of_a_queued_backlog(
    budget_db: Database,
) -> None:
    second = await Database.connect(budget_db.url, size=4)  # another replica: its own pool
    try:
        account = uuid.uuid4().hex
        budgets = [_budget(db, account) for db in (budget_db, second)]
        served = await _backlog_then_quiet(budgets, budgets[1][0])
    finally:
        await second.close()
    order = served.order()
    # At most the slot already booked when it asked goes before it; a first-come queue would
    # have served it after all eight.
    assert order.index("quiet") <= 3, order
    # The backlog keeps its own order, whichever replica each call asked through.
    assert [n for n in order if n != "quiet"] == [f"backlog{i}" for i in range(BACKLOG)]


async def test_without_a_head_start_the_quiet_call_queues_behind_the_backlog(
    budget_db: Database,
) -> None:
    # The same scene with no head start: the queue is first come, first served, and the
    # call waits behind every call queued before it (what the head start removes).
    budget = _budget(budget_db, uuid.uuid4().hex, quiet_head_start=0)
    served = await _backlog_then_quiet([budget, budget], budget[0])
    assert served.order()[-1] == "quiet", served.order()


async def test_a_waiter_whose_replica_died_does_not_hold_the_queue(budget_db: Database) -> None:
    account = uuid.uuid4().hex
    budget = SesBudget(PgSlotStore(budget_db), rate=RATE, send_rate=RATE, account=account)
    bucket = budget.bucket(REGION)
    await budget.acquire(REGION)  # the bucket exists, its next slot half a second away
    async with budget_db.pool.acquire() as conn:
        # A caller ranked first, last seen ten seconds ago: its process died while queued.
        await conn.execute(
            "INSERT INTO ses_budget_waiters (bucket, waiter, asked_at, ordered_at, seen_at)"
            " VALUES ($1, $2, now() - interval '10 s', now() - interval '1 hour',"
            " now() - interval '10 s')",
            bucket,
            uuid.uuid4(),
        )
    waited = await asyncio.wait_for(budget.acquire(REGION), timeout=5)
    assert waited <= 1 / RATE + 0.3
