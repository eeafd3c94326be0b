"""SES domain identities against moto in server mode over HTTP; moto is read back directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aioboto3
import pytest
from types_aiobotocore_ses.client import SESClient

from domainflow.kit.aws import AwsClients, SesError
from domainflow.provisioner.adapters.ses import SesIdentities
from domainflow.sandbox.moto import MotoSandbox

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def new_domain() -> str:
    return f"mail.acme-{uuid.uuid4().hex[:10]}.com"


@pytest.fixture
async def identities(moto_server: MotoSandbox) -> AsyncIterator[SesIdentities]:
    # No endpoint given: the client finds moto through AWS_ENDPOINT_URL, as in production.
    async with SesIdentities(AwsClients(max_attempts=1)) as adapter:
        yield adapter


@pytest.fixture
async def moto_ses(moto_server: MotoSandbox) -> AsyncIterator[SESClient]:
    """A client of the test's own, straight to moto (not through the code under test)."""
    async with aioboto3.Session().client(
        "ses", region_name=REGION, endpoint_url=moto_server.url
    ) as client:
        yield client


async def test_creating_an_identity_hands_back_three_dkim_tokens(
    identities: SesIdentities, moto_ses: SESClient
) -> None:
    domain = new_domain()
    tokens = await identities.create_identity(domain, REGION)

    assert len(tokens) == 3
    assert all(isinstance(t, str) and t for t in tokens)
    listed = await moto_ses.list_identities(IdentityType="Domain")
    assert domain in listed["Identities"]
    dkim = await moto_ses.get_identity_dkim_attributes(Identities=[domain])
    assert dkim["DkimAttributes"][domain]["DkimTokens"] == tokens
    assert await identities.identity_exists(domain, REGION)


async def test_creating_it_again_returns_the_same_tokens(
    identities: SesIdentities, moto_ses: SESClient
) -> None:
    domain = new_domain()
    first = await identities.create_identity(domain, REGION)
    again = await identities.create_identity(domain, REGION)

    assert again == first
    listed = await moto_ses.list_identities(IdentityType="Domain")
    assert listed["Identities"].count(domain) == 1


async def test_the_identity_is_the_one_sesv2_sees(
    identities: SesIdentities, moto_server: MotoSandbox
) -> None:
    domain = new_domain()
    await identities.create_identity(domain, REGION)
    async with aioboto3.Session().client(
        "sesv2", region_name=REGION, endpoint_url=moto_server.url
    ) as v2:
        found = await v2.get_email_identity(EmailIdentity=domain)
    assert found["IdentityType"] == "DOMAIN"


async def test_mail_from_is_set_on_the_identity(
    identities: SesIdentities, moto_ses: SESClient
) -> None:
    domain = new_domain()
    await identities.create_identity(domain, REGION)
    await identities.set_mail_from(domain, f"bounce.{domain}", REGION)

    attributes = await moto_ses.get_identity_mail_from_domain_attributes(Identities=[domain])
    assert attributes["MailFromDomainAttributes"][domain]["MailFromDomain"] == f"bounce.{domain}"


async def test_mail_from_outside_the_domain_is_refused_as_not_retryable(
    identities: SesIdentities,
) -> None:
    domain = new_domain()
    await identities.create_identity(domain, REGION)
    with pytest.raises(SesError) as refused:
        await identities.set_mail_from(domain, "bounce.elsewhere.example", REGION)
    assert refused.value.code == "InvalidParameterValue"
    assert not refused.value.retryable


async def test_deleting_removes_the_identity_and_deleting_again_is_fine(
    identities: SesIdentities, moto_ses: SESClient
) -> None:
    domain = new_domain()
    await identities.create_identity(domain, REGION)
    await identities.delete_identity(domain, REGION)

    assert not await identities.identity_exists(domain, REGION)
    listed = await moto_ses.list_identities()
    assert domain not in listed["Identities"]
    await identities.delete_identity(domain, REGION)  # already gone
    await identities.delete_identity(new_domain(), REGION)  # never there


async def test_regions_are_separate(identities: SesIdentities) -> None:
    domain = new_domain()
    await identities.create_identity(domain, "eu-west-1")
    assert await identities.identity_exists(domain, "eu-west-1")
    assert not await identities.identity_exists(domain, REGION)
    await identities.delete_identity(domain, "eu-west-1")


async def test_an_unreachable_ses_is_a_retryable_error() -> None:
    # Port 9 (discard) on loopback: the connection is refused.
    adapter = SesIdentities(AwsClients(endpoint_url="http://127.0.0.1:9", max_attempts=1))
    with pytest.raises(SesError) as failed:
        await adapter.create_identity(new_domain(), REGION)
    assert failed.value.retryable
    assert failed.value.code == "EndpointConnectionError"


async def test_clients_are_built_without_the_session_being_opened(
    moto_ses: SESClient,
) -> None:
    domain = new_domain()
    adapter = SesIdentities()  # no context manager: a client per call
    await adapter.create_identity(domain, REGION)
    listed = await moto_ses.list_identities(IdentityType="Domain")
    assert domain in listed["Identities"]


async def test_clients_follow_the_standard_aws_variables(
    moto_server: MotoSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    async with AwsClients() as clients, clients.ses("eu-west-1") as ses:
        assert ses.meta.endpoint_url == moto_server.url  # botocore read AWS_ENDPOINT_URL
        assert ses.meta.region_name == "eu-west-1"
        retries = ses.meta.config.retries  # type: ignore[attr-defined]
        assert retries == {"mode": "standard", "total_max_attempts": 1}
        async with clients.ses("eu-west-1") as same:
            assert same is ses  # one client per region while open
    async with AwsClients(endpoint_url="http://127.0.0.1:9") as clients, clients.ses() as ses:
        assert ses.meta.endpoint_url == "http://127.0.0.1:9"  # explicit wins
        assert ses.meta.region_name == REGION  # AWS_DEFAULT_REGION
