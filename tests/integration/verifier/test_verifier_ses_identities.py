"""SES's identity attributes through moto in server mode; a real HTTP proxy gives statuses moto
never does.

moto answers `Success` for every domain identity it holds (DKIM, verification, and a MAIL FROM
domain once one is set) and `NotStarted` or nothing otherwise, so the Pending/Failed/
TemporaryFailure cases go through `DkimStatusProxy`, which forwards each request to moto and
rewrites only the status of the domains it is told about. The proxy also sees every
Get*Attributes request on the wire, which is how batching is checked.
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
from domainflow.verifier.adapters.ses import SesIdentities
from domainflow.verifier.probe import DkimAttributes

pytestmark = pytest.mark.integration

REGION = "us-east-1"

SES_WORDS = [
    ("Pending", DkimStatus.PENDING),
    ("Success", DkimStatus.SUCCESS),
    ("Failed", DkimStatus.FAILED),
    ("TemporaryFailure", DkimStatus.TEMPORARY_FAILURE),
    ("NotStarted", DkimStatus.NOT_STARTED),
]


def new_domain() -> str:
    return f"mail.acme-{uuid.uuid4().hex[:10]}.com"


def signing(status: DkimStatus) -> DkimAttributes:
    return DkimAttributes(status, signing_enabled=True)


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
async def identities(proxy: DkimStatusProxy) -> AsyncIterator[SesIdentities]:
    async with SesIdentities(AwsClients(endpoint_url=proxy.url, max_attempts=1)) as adapter:
        yield adapter


async def test_an_identity_moto_holds_is_success_and_an_unknown_one_not_started(
    moto_ses: SESClient,
) -> None:
    known, unknown = new_domain(), new_domain()
    await moto_ses.verify_domain_dkim(Domain=known)
    async with SesIdentities() as adapter:  # found through AWS_ENDPOINT_URL
        dkim = await adapter.dkim([known, unknown], REGION)
        verification = await adapter.verification([known, unknown], REGION)
    assert dkim[known] == signing(DkimStatus.SUCCESS)
    assert dkim[unknown].status == DkimStatus.NOT_STARTED
    # SES leaves an identity it does not know out of the verification answer: not started.
    assert verification == {known: DkimStatus.SUCCESS, unknown: DkimStatus.NOT_STARTED}


async def test_mail_from_is_not_started_until_set_then_as_ses_says(
    moto_ses: SESClient, proxy: DkimStatusProxy, identities: SesIdentities
) -> None:
    bare, with_mail_from, pending = new_domain(), new_domain(), new_domain()
    for name in (bare, with_mail_from, pending):
        await moto_ses.verify_domain_dkim(Domain=name)
    for name in (with_mail_from, pending):
        await moto_ses.set_identity_mail_from_domain(Identity=name, MailFromDomain=f"send.{name}")
    # moto says Success for every MAIL FROM domain it holds; the proxy says what SES would
    # while the MX record is not yet seen.
    proxy.mail_from_statuses[pending] = "Pending"

    found = await identities.mail_from([bare, with_mail_from, pending], REGION)

    assert found == {
        bare: DkimStatus.NOT_STARTED,  # SES answers no status without a MAIL FROM domain
        with_mail_from: DkimStatus.SUCCESS,
        pending: DkimStatus.PENDING,
    }
    assert proxy.attribute_calls == [
        ("GetIdentityMailFromDomainAttributes", [bare, with_mail_from, pending])
    ]


@pytest.mark.parametrize(("ses_says", "expected"), SES_WORDS)
async def test_every_ses_status_maps_to_its_status(
    moto_ses: SESClient,
    proxy: DkimStatusProxy,
    identities: SesIdentities,
    ses_says: str,
    expected: DkimStatus,
) -> None:
    domain, bystander = new_domain(), new_domain()
    for name in (domain, bystander):
        await moto_ses.verify_domain_dkim(Domain=name)
        await moto_ses.set_identity_mail_from_domain(Identity=name, MailFromDomain=f"send.{name}")
    proxy.statuses[domain] = ses_says
    proxy.verification_statuses[domain] = ses_says
    proxy.mail_from_statuses[domain] = ses_says

    both = [domain, bystander]
    assert await identities.dkim(both, REGION) == {
        domain: signing(expected),
        bystander: signing(DkimStatus.SUCCESS),
    }
    assert await identities.verification(both, REGION) == {
        domain: expected,
        bystander: DkimStatus.SUCCESS,
    }
    assert await identities.mail_from(both, REGION) == {
        domain: expected,
        bystander: DkimStatus.SUCCESS,
    }


async def test_more_than_a_hundred_identities_take_several_calls(
    moto_ses: SESClient, proxy: DkimStatusProxy, identities: SesIdentities
) -> None:
    domains = [new_domain() for _ in range(230)]
    for domain in domains[:150]:
        await moto_ses.verify_domain_identity(Domain=domain)
    pending = domains[7]
    proxy.statuses[pending] = "Pending"
    proxy.verification_statuses[pending] = "Pending"

    found = await identities.dkim(domains, REGION)
    verification = await identities.verification(domains, REGION)
    await identities.mail_from(domains, REGION)

    assert [len(call) for call in proxy.dkim_calls] == [100, 100, 30]
    assert [(action, len(call)) for action, call in proxy.attribute_calls] == [
        (action, size)
        for action in (
            "GetIdentityDkimAttributes",
            "GetIdentityVerificationAttributes",
            "GetIdentityMailFromDomainAttributes",
        )
        for size in (100, 100, 30)
    ]
    assert sorted(name for call in proxy.dkim_calls for name in call) == sorted(domains)
    assert set(found) == set(domains) == set(verification)
    assert found[pending].status == DkimStatus.PENDING
    assert verification[pending] == DkimStatus.PENDING
    assert all(found[d].status == DkimStatus.SUCCESS for d in domains[:150] if d != pending)
    assert all(found[d].status == DkimStatus.NOT_STARTED for d in domains[150:])
    assert all(verification[d] == DkimStatus.NOT_STARTED for d in domains[150:])


async def test_the_same_domain_twice_is_asked_once_and_keyed_as_given(
    moto_ses: SESClient, proxy: DkimStatusProxy, identities: SesIdentities
) -> None:
    domain = new_domain()
    await moto_ses.verify_domain_dkim(Domain=domain)
    found = await identities.dkim([domain, domain.upper()], REGION)
    assert proxy.dkim_calls == [[domain]]
    assert found == {
        domain: signing(DkimStatus.SUCCESS),
        domain.upper(): signing(DkimStatus.SUCCESS),
    }


async def test_no_domains_make_no_call(proxy: DkimStatusProxy, identities: SesIdentities) -> None:
    assert await identities.dkim([], REGION) == {}
    assert await identities.verification([], REGION) == {}
    assert await identities.mail_from([], REGION) == {}
    assert proxy.attribute_calls == []


async def test_an_unreachable_ses_raises_a_retryable_error() -> None:
    adapter = SesIdentities(AwsClients(endpoint_url="http://127.0.0.1:9", max_attempts=1))
    for read in (adapter.dkim, adapter.verification, adapter.mail_from):
        with pytest.raises(SesError) as failed:
            await read([new_domain()], REGION)
        assert failed.value.retryable


def test_a_batch_above_ses_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 100"):
        SesIdentities(batch=101)
