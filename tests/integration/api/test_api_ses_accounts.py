"""Placement of new domains in SES accounts, over the api's real database: by region and by
room, an account at its cap taking nothing (503, nothing created), the account kept on the
domain and carried in its events, a deletion freeing room."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from domainflow.api.app import create_app
from domainflow.api.domains import operators
from domainflow.cli.operators import holding_view
from domainflow.contracts import DeletionRequested, DomainDeprovisioned, DomainRequested
from domainflow.kit.envelope import decode
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, listening, unique

pytestmark = pytest.mark.integration

#: alpha and beta serve us-east-1 (room for 2 and 1), gamma eu-west-1 (room for 1).
ACCOUNTS = [
    {"name": "alpha", "regions": ["us-east-1"], "identity_cap": 2},
    {"name": "beta", "regions": ["us-east-1"], "identity_cap": 1},
    {"name": "gamma", "regions": ["eu-west-1"], "identity_cap": 1},
]


@pytest.fixture(scope="module")
async def api(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    settings = api_settings(
        await database_url("api_accounts"), amqp_url, ses={"accounts": ACCOUNTS}
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


async def add(api: ApiHarness, key: str, region: str = "us-east-1") -> httpx.Response:
    body = {"domain": f"{unique('acct')}.example.com", "region": region}
    return await api.client.post(DOMAINS, json=body, headers=auth(key))


async def account_of(api: ApiHarness, domain_id: str) -> str | None:
    found: str | None = await api.fetchval(
        "SELECT ses_account FROM domains WHERE public_id = $1", domain_id
    )
    return found


async def test_domains_fill_the_accounts_of_their_region_and_a_full_region_refuses(
    api: ApiHarness,
) -> None:
    team = await api.key()
    placed: list[dict[str, Any]] = []
    async with listening(api, "domain.requested") as heard:
        for _ in range(3):
            response = await add(api, team.plaintext)
            assert response.status_code == 202, response.text
            placed.append(response.json()["data"])
        requested = [decode((await heard.get()).body) for _ in range(3)]
    # Most room first, the first listed on a tie: alpha (2 free), alpha (1 = 1), beta.
    assert [await account_of(api, d["id"]) for d in placed] == ["alpha", "alpha", "beta"]
    carried = {e.domain_id: e.ses_account for e in requested if isinstance(e, DomainRequested)}
    assert carried == {placed[0]["id"]: "alpha", placed[1]["id"]: "alpha", placed[2]["id"]: "beta"}

    before = await api.fetchval("SELECT count(*) FROM domains")
    refused = await add(api, team.plaintext)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"]["reason"] == "ses_capacity_exhausted"
    assert refused.headers["Retry-After"] == "300"
    assert await api.fetchval("SELECT count(*) FROM domains") == before  # nothing half-made

    # Another region has accounts of its own.
    europe = await add(api, team.plaintext, "eu-west-1")
    assert europe.status_code == 202, europe.text
    assert await account_of(api, europe.json()["data"]["id"]) == "gamma"
    assert (await add(api, team.plaintext, "eu-west-1")).status_code == 503

    # A deletion frees its account's room once the provisioner says the identity is gone.
    first = placed[0]
    await api.provision(team, first)
    async with listening(api, "domain.deletion_requested") as heard:
        deleting = await api.client.delete(f"{DOMAINS}/{first['id']}", headers=auth(team.plaintext))
        assert deleting.status_code in (200, 202), deleting.text
        deletion = decode((await heard.get()).body)
    assert isinstance(deletion, DeletionRequested)
    assert deletion.ses_account == "alpha"
    assert (await add(api, team.plaintext)).status_code == 503  # still held while deleting
    gone = DomainDeprovisioned(
        correlation_id=unique("req_"),
        team_id=team.team_public_id,
        domain_id=first["id"],
        domain=first["domain"],
    )
    await api.call(api.handlers.on_deprovisioned, gone)
    again = await add(api, team.plaintext)
    assert again.status_code == 202, again.text
    assert await account_of(api, again.json()["data"]["id"]) == "alpha"

    # What operators see: the domain's account, and each account's usage beside its cap.
    shown = holding_view(await api.call(operators.holder, api.uow, again.json()["data"]["domain"]))
    assert (shown["ses_account"], shown["region"]) == ("alpha", "us-east-1")
    usage = await api.call(operators.accounts_usage, api.uow, api.settings)
    assert {(u.account, u.region): (u.identities, u.cap, u.takes_new_domains) for u in usage} == {
        ("alpha", "us-east-1"): (2, 2, False),
        ("beta", "us-east-1"): (1, 1, False),
        ("gamma", "eu-west-1"): (1, 1, False),
    }
    scraped = (await api.scrape()).text
    assert (
        'domainflow_ses_identities{service="api",account="alpha",region="us-east-1"} 2' in scraped
    )
    assert (
        'domainflow_ses_identities{service="api",account="gamma",region="eu-west-1"} 1' in scraped
    )
