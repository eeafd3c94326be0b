"""On-demand DKIM lookups that gather while an SES call waits for its slot share that call.

Real moto behind `DkimStatusProxy` (which records every GetIdentityDkimAttributes on the
wire) and the real shared limiter in PostgreSQL at SES's one request a second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aioboto3
import pytest

from domainflow.contracts import DkimStatus, DnsRecords, RecordCheck
from domainflow.kit.aws import AwsClients
from domainflow.kit.ses_budget import PgSlotStore, SesBudget, open_budget_database
from domainflow.sandbox.moto import DkimStatusProxy, MotoSandbox
from domainflow.verifier.adapters.ses import DkimStatuses
from domainflow.verifier.checks import verification_outcome
from domainflow.verifier.probe import DomainProbe

pytestmark = pytest.mark.integration

REGION = "us-east-1"


async def _no_dns(records: DnsRecords) -> list[RecordCheck]:
    raise AssertionError("these tests ask SES only")


@pytest.fixture
def proxy(moto_server: MotoSandbox) -> Iterator[DkimStatusProxy]:
    with DkimStatusProxy(moto_server.url) as running:
        yield running


@pytest.fixture
async def probe(
    proxy: DkimStatusProxy, database_url: Callable[[str], Awaitable[str]]
) -> AsyncIterator[DomainProbe]:
    url = await database_url("coalescing")
    db = await open_budget_database(url, size=4)
    try:
        async with DkimStatuses(AwsClients(endpoint_url=proxy.url, max_attempts=1)) as ses:
            budget = SesBudget(PgSlotStore(db), rate=1.0, send_rate=1.0, account=uuid.uuid4().hex)
            yield DomainProbe(_no_dns, ses, budget, verification_outcome)
    finally:
        await db.close()


async def _in_moto(moto_server: MotoSandbox, count: int) -> list[str]:
    names = [f"mail.c-{uuid.uuid4().hex[:10]}.com" for _ in range(count)]
    async with aioboto3.Session().client(
        "ses", region_name=REGION, endpoint_url=moto_server.url
    ) as ses:
        for name in names:
            await ses.verify_domain_dkim(Domain=name)
    return names


async def test_fifty_verifies_at_once_cost_one_call(
    probe: DomainProbe, proxy: DkimStatusProxy, moto_server: MotoSandbox
) -> None:
    known = await _in_moto(moto_server, 40)
    unknown = [f"mail.u-{uuid.uuid4().hex[:10]}.com" for _ in range(10)]
    answers = await asyncio.gather(*(probe.dkim_status(d, REGION) for d in known + unknown))
    assert answers == [DkimStatus.SUCCESS] * 40 + [DkimStatus.NOT_STARTED] * 10
    assert len(proxy.dkim_calls) == 1  # one call at 1 request/s, not fifty
    assert sorted(proxy.dkim_calls[0]) == sorted(known + unknown)


async def test_more_than_a_batch_is_split_at_a_hundred(
    probe: DomainProbe, proxy: DkimStatusProxy
) -> None:
    names = [f"mail.b-{uuid.uuid4().hex[:10]}.com" for _ in range(150)]
    answers = await asyncio.gather(*(probe.dkim_status(d, REGION) for d in names))
    assert set(answers) == {DkimStatus.NOT_STARTED}
    assert sorted(len(call) for call in proxy.dkim_calls) == [50, 100]


async def test_a_lookup_after_a_quiet_spell_gets_its_own_call(
    probe: DomainProbe, proxy: DkimStatusProxy, moto_server: MotoSandbox
) -> None:
    first, second = await _in_moto(moto_server, 2)
    assert await probe.dkim_status(first, REGION) == DkimStatus.SUCCESS
    assert await probe.dkim_status(second, REGION) == DkimStatus.SUCCESS
    assert proxy.dkim_calls == [[first], [second]]


async def test_an_ses_outage_leaves_every_waiting_lookup_unknown(
    probe: DomainProbe, proxy: DkimStatusProxy
) -> None:
    proxy.stop()  # SES unreachable: inconclusive, never failed
    names = [f"mail.o-{uuid.uuid4().hex[:10]}.com" for _ in range(3)]
    answers = await asyncio.gather(*(probe.dkim_status(d, REGION) for d in names))
    assert answers == [None, None, None]
