"""The SES budget holds across replicas: two budgets on separate pools share one rate.

Judged by what SES saw, not by a clock: every call goes over HTTP to `SesQuotaSandbox`, which
throttles like SES past the rate and counts what it accepted and refused. Replicas that
share the budget's slots are (nearly) never refused; replicas that keep slots of their own
spend twice the rate and are refused for it. A loaded machine can only wake a sleeper late
and bunch it with the next (a throttle, waited out), never make the budget hand out more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from domainflow.kit.aws import AwsClients
from domainflow.kit.database import Database
from domainflow.kit.ses_budget import (
    MemorySlotStore,
    PgSlotStore,
    SesBudget,
    SlotStore,
    open_budget_database,
)
from domainflow.sandbox.moto import MotoSandbox, SesQuotaSandbox

pytestmark = pytest.mark.integration

RATE = 5.0  # per second; high enough to keep the test short, low enough for a busy machine
BURST = 2.0  # SES's bucket lets one late request through beside the next one
CALLERS_PER_REPLICA = 3
CALLS_PER_CALLER = 5
CALLS = 2 * CALLERS_PER_REPLICA * CALLS_PER_CALLER
REGION = "us-east-1"


@pytest.fixture
def proxy(fresh_moto: MotoSandbox) -> Iterator[SesQuotaSandbox]:
    with SesQuotaSandbox(fresh_moto.url, rate=RATE, burst=BURST) as running:
        yield running


@pytest.fixture
async def budget_db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    db = await open_budget_database(await database_url("ses_budget"), size=4)
    yield db
    await db.close()


async def _hammer(proxy: SesQuotaSandbox, stores: list[SlotStore]) -> None:
    """Each replica runs several callers at once, every call through its budget to SES."""
    account = uuid.uuid4().hex
    async with AwsClients(endpoint_url=proxy.url) as aws, aws.ses(REGION) as ses:

        async def caller(budget: SesBudget) -> None:
            for _ in range(CALLS_PER_CALLER):
                await budget.call(
                    REGION, lambda: ses.get_identity_dkim_attributes(Identities=["a.example"])
                )

        budgets = [SesBudget(store, rate=RATE, send_rate=RATE, account=account) for store in stores]
        await asyncio.gather(
            *(caller(budget) for budget in budgets for _ in range(CALLERS_PER_REPLICA))
        )


async def test_two_replicas_together_stay_within_the_rate(
    proxy: SesQuotaSandbox, budget_db: Database
) -> None:
    second = await Database.connect(budget_db.url, size=4)  # another replica: its own pool
    try:
        await _hammer(proxy, [PgSlotStore(budget_db), PgSlotStore(second)])
    finally:
        await second.close()

    accepted = proxy.calls(accepted=True)
    throttled = proxy.calls(accepted=False)
    assert len(accepted) == CALLS  # every call was made, and made once
    # The budget never offers SES more than it allows: at most a stray late call refused.
    assert len(throttled) <= CALLS // 10, proxy.per_second()
    assert proxy.most_in_a_second(accepted=True) <= RATE + BURST - 1
    # Slots are handed out, not wasted: the calls are packed at the rate, not spread thin
    # (seconds in which SES saw a call, counted, not the run's length).
    seconds = proxy.per_second()
    assert len(seconds) <= 2 * CALLS / RATE, seconds


async def test_without_a_shared_store_two_replicas_would_overspend(
    proxy: SesQuotaSandbox,
) -> None:
    # The same harness with each replica keeping its own slots: together they offer SES
    # twice the rate and are refused for it (and still finish: throttling is waited out).
    await _hammer(proxy, [MemorySlotStore(), MemorySlotStore()])
    assert len(proxy.calls(accepted=True)) == CALLS
    assert len(proxy.calls(accepted=False)) > CALLS // 10
