"""Several SES accounts against moto with three accounts: every call of a domain's life, the
provisioner's and the verifier's, lands in the domain's own account (read back from moto
with that account's keys), and a budget of its own paces each account."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from domainflow.contracts import DkimStatus
from domainflow.kit.aws import SesError
from domainflow.kit.ses_accounts import SesRoutes
from domainflow.kit.ses_budget import MemorySlotStore, SesBudget
from domainflow.kit.settings import AwsSettings, SesSettings
from domainflow.provisioner.adapters.ses import SesIdentities as Provisioning
from domainflow.verifier.adapters.ses import SesIdentities as Reading
from tests.plugins.ses import MotoAccounts

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def new_domain() -> str:
    return f"mail.acct-{uuid.uuid4().hex[:10]}.com"


@pytest.fixture
def routes(moto_accounts: MotoAccounts) -> SesRoutes:
    settings = SesSettings(accounts=moto_accounts.entries())
    return SesRoutes(settings, AwsSettings(max_attempts=1))


@pytest.fixture
def store() -> MemorySlotStore:
    return MemorySlotStore()


@pytest.fixture
async def provisioning(routes: SesRoutes, store: MemorySlotStore) -> AsyncIterator[Provisioning]:
    budget = SesBudget(store, rate=1000.0, send_rate=1000.0)
    async with Provisioning(routes.clients(None), budget, routes=routes) as adapter:
        yield adapter


@pytest.fixture
async def reading(routes: SesRoutes) -> AsyncIterator[Reading]:
    async with Reading(routes.clients(None), routes=routes) as adapter:
        yield adapter


async def test_a_domain_lives_and_dies_in_its_own_account(
    provisioning: Provisioning, reading: Reading, moto_accounts: MotoAccounts
) -> None:
    domain = new_domain()
    tokens = await provisioning.create_identity(domain, REGION, account="beta")
    await provisioning.set_mail_from(domain, f"bounce.{domain}", REGION, account="beta")

    assert len(tokens) == 3
    assert await moto_accounts.holders(domain) == ["beta"]
    assert await moto_accounts.mail_from("beta", domain) == f"bounce.{domain}"
    assert await provisioning.identity_exists(domain, REGION, account="beta")
    assert not await provisioning.identity_exists(domain, REGION, account="alpha")
    # The verifier reads the identity where it lives; the other accounts never heard of it.
    in_beta = await reading.dkim([domain], REGION, account="beta")
    in_gamma = await reading.dkim([domain], REGION, account="gamma")
    assert in_beta[domain].status is not DkimStatus.NOT_STARTED
    assert in_gamma[domain].status is DkimStatus.NOT_STARTED
    mail_from = await reading.mail_from([domain], REGION, account="beta")
    assert mail_from[domain] is not DkimStatus.NOT_STARTED

    await provisioning.delete_identity(domain, REGION, account="beta")
    assert await moto_accounts.holders(domain) == []


async def test_the_same_name_in_two_accounts_is_two_identities(
    provisioning: Provisioning, moto_accounts: MotoAccounts
) -> None:
    domain = new_domain()
    await provisioning.create_identity(domain, REGION, account="alpha")
    await provisioning.create_identity(domain, REGION, account="gamma")
    assert await moto_accounts.holders(domain) == ["alpha", "gamma"]

    await provisioning.delete_identity(domain, REGION, account="alpha")
    assert await moto_accounts.holders(domain) == ["gamma"]


async def test_each_account_spends_a_budget_of_its_own(
    provisioning: Provisioning, store: MemorySlotStore
) -> None:
    await provisioning.create_identity(new_domain(), REGION, account="alpha")
    await provisioning.create_identity(new_domain(), REGION, account="gamma")
    buckets = set(store._next_free)
    assert f"ses:alpha:{REGION}:request" in buckets
    assert f"ses:gamma:{REGION}:request" in buckets
    assert f"ses:beta:{REGION}:request" not in buckets


async def test_an_account_not_configured_is_refused_not_guessed(
    provisioning: Provisioning, moto_accounts: MotoAccounts
) -> None:
    domain = new_domain()
    with pytest.raises(SesError) as refused:
        await provisioning.create_identity(domain, REGION, account="delta")
    assert refused.value.code == "UnknownAccount"
    assert not refused.value.retryable
    assert await moto_accounts.holders(domain) == []
