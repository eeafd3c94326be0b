"""SES's DKIM status through moto in server mode; a real HTTP proxy gives statuses moto never does.

moto answers `Success` for every domain identity it holds and `NotStarted` otherwise, so the
Pending/Failed/TemporaryFailure cases go through `DkimStatusProxy`, which forwards each request
to moto and rewrites only the status of the domains it is told about. The proxy also sees
every GetIdentityDkimAttributes request on the wire, which is how batching is checked.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import aioboto3
import pytest
from types_aiobotocore_ses.client import SESClient

from domainflow.contracts.events import DkimStatus
from domainflow.kit.aws import AwsClients, SesError
from domainflow.sandbox.moto import DkimStatusProxy, MotoSandbox
from domainflow.verifier.adapters.ses import DkimStatuses

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def new_domain() -> str:
    return f"mail.acme-{uuid.uuid4().hex[:10]}.com"


@pytest.fixture
async def moto_ses(moto_server: MotoSandbox) -> AsyncIterator[SESClient]:
    """A client of the test's own, straight to moto (not through the code under test)."""
    async with aioboto3.Session().client(
        "ses", region_name=REGION, endpoint_url=moto_server.url
    ) as client:
        yield client


@pytest.fixture
def proxy(moto_server: MotoSandbox) -> Iterator[DkimStatusProxy]:
    with DkimStatusProxy(moto_server.url) as running:
        yield running


@pytest.fixture
async def statuses(proxy: DkimStatusProxy) -> AsyncIterator[DkimStatuses]:
    async with DkimStatuses(AwsClients(endpoint_url=proxy.url, max_attempts=1)) as adapter:
        yield adapter


async def test_an_identity_moto_holds_is_success_and_an_unknown_one_not_started(
    moto_ses: SESClient,
) -> None:
    known, unknown = new_domain(), new_domain()
    await moto_ses.verify_domain_dkim(Domain=known)
    async with DkimStatuses() as adapter:  # found through AWS_ENDPOINT_URL
        found = await adapter.fetch([known, unknown], REGION)
    assert found == {known: DkimStatus.SUCCESS, unknown: DkimStatus.NOT_STARTED}


@pytest.mark.parametrize(
    ("ses_says", "expected"),
    [
        ("Pending", DkimStatus.PENDING),
        ("Success", DkimStatus.SUCCESS),
        ("Failed", DkimStatus.FAILED),
        ("TemporaryFailure", DkimStatus.TEMPORARY_FAILURE),
        ("NotStarted", DkimStatus.NOT_STARTED),
    ],
)
async def test_every_ses_status_maps_to_its_dkim_status(
    moto_ses: SESClient,
    proxy: DkimStatusProxy,
    statuses: DkimStatuses,
    ses_says: str,
    expected: DkimStatus,
) -> None:
    domain, bystander = new_domain(), new_domain()
    for name in (domain, bystander):
        await moto_ses.verify_domain_dkim(Domain=name)
    proxy.statuses[domain] = ses_says

    found = await statuses.fetch([domain, bystander], REGION)
    assert found == {domain: expected, bystander: DkimStatus.SUCCESS}


async def test_more_than_a_hundred_identities_take_several_calls(
    moto_ses: SESClient, proxy: DkimStatusProxy, statuses: DkimStatuses
) -> None:
    domains = [new_domain() for _ in range(230)]
    for domain in domains[:150]:
        await moto_ses.verify_domain_identity(Domain=domain)
    pending = domains[7]
    proxy.statuses[pending] = "Pending"

    found = await statuses.fetch(domains, REGION)

    assert [len(call) for call in proxy.dkim_calls] == [100, 100, 30]
    assert sorted(name for call in proxy.dkim_calls for name in call) == sorted(domains)
    assert set(found) == set(domains)
    assert found[pending] == DkimStatus.PENDING
    assert all(found[d] == DkimStatus.SUCCESS for d in domains[:150] if d != pending)
    assert all(found[d] == DkimStatus.NOT_STARTED for d in domains[150:])


async def test_the_same_domain_twice_is_asked_once_and_keyed_as_given(
    moto_ses: SESClient, proxy: DkimStatusProxy, statuses: DkimStatuses
) -> None:
    domain = new_domain()
    await moto_ses.verify_domain_dkim(Domain=domain)
    found = await statuses.fetch([domain, domain.upper()], REGION)
    assert proxy.dkim_calls == [[domain]]
    assert found == {domain: DkimStatus.SUCCESS, domain.upper(): DkimStatus.SUCCESS}


async def test_no_domains_make_no_call(proxy: DkimStatusProxy, statuses: DkimStatuses) -> None:
    assert await statuses.fetch([], REGION) == {}
    assert proxy.dkim_calls == []


async def test_an_unreachable_ses_raises_a_retryable_error() -> None:
    adapter = DkimStatuses(AwsClients(endpoint_url="http://127.0.0.1:9", max_attempts=1))
    with pytest.raises(SesError) as failed:
        await adapter.fetch([new_domain()], REGION)
    assert failed.value.retryable


def test_a_batch_above_ses_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 100"):
        DkimStatuses(batch=101)
