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
from domainflow.verifier.adapters.ses import SesIdentities
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
        async with SesIdentities(AwsClients(endpoint_url=proxy.url, max_attempts=1)) as ses:
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


async def test_a_round_reads_every_identity_attribute_in_three_batched_calls(
    probe: DomainProbe, proxy: DkimStatusProxy, moto_server: MotoSandbox
) -> None:
    known = await _in_moto(moto_server, 30)
    unknown = f"mail.u-{uuid.uuid4().hex[:10]}.com"
    proxy.verification_statuses[known[0]] = "Pending"  # moto says Success for all it holds
    readings = await asyncio.gather(*(probe.ses_reading(d, REGION) for d in [*known, unknown]))
    # Thirty-one verifies, one round: DKIM, verification and MAIL FROM, each batched.
    assert [(action, sorted(call)) for action, call in proxy.attribute_calls] == [
        (action, sorted([*known, unknown]))
        for action in (
            "GetIdentityDkimAttributes",
            "GetIdentityVerificationAttributes",
            "GetIdentityMailFromDomainAttributes",
        )
    ]
    identities = [r.identity for r in readings]
    assert all(i is not None for i in identities)
    first, *rest, stranger = [i for i in identities if i is not None]
    assert (first.verification_status, first.verified_for_sending) == (DkimStatus.PENDING, False)
    for identity in rest:
        assert identity.dkim_signing_enabled is True
        assert identity.verification_status == DkimStatus.SUCCESS
        assert identity.verified_for_sending is True
        assert identity.mail_from_status == DkimStatus.NOT_STARTED  # no MAIL FROM set here
    assert stranger.verification_status == DkimStatus.NOT_STARTED
    assert stranger.verified_for_sending is False


class _VerificationUnreachable:
    """DKIM and MAIL FROM from the proxy's SES, verification from an SES nobody listens on."""

    def __init__(self, reachable: SesIdentities, unreachable: SesIdentities) -> None:
        self.dkim = reachable.dkim
        self.mail_from = reachable.mail_from
        self.verification = unreachable.verification


async def test_dkim_read_but_the_rest_failing_keeps_the_verdict_and_leaves_the_identity_out(
    proxy: DkimStatusProxy, moto_server: MotoSandbox, database_url: Callable[[str], Awaitable[str]]
) -> None:
    [name] = await _in_moto(moto_server, 1)
    db = await open_budget_database(await database_url("coalescing_half"), size=2)
    try:
        async with (
            SesIdentities(AwsClients(endpoint_url=proxy.url, max_attempts=1)) as reachable,
            SesIdentities(AwsClients(endpoint_url="http://127.0.0.1:9", max_attempts=1)) as gone,
        ):
            budget = SesBudget(PgSlotStore(db), rate=20.0, send_rate=1.0, account=uuid.uuid4().hex)
            probe = DomainProbe(
                _no_dns, _VerificationUnreachable(reachable, gone), budget, verification_outcome
            )
            reading = await probe.ses_reading(name, REGION)
    finally:
        await db.close()
    assert reading.dkim == DkimStatus.SUCCESS
    assert reading.identity is None  # the api keeps what it last heard
