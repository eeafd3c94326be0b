"""A team's domain writes are budgeted (burst, then rate), shared by every api replica, and a
refusal is a 429 that says when to come back; other teams and bad requests are untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from litestar.testing import AsyncTestClient

from domainflow.api.app import create_app
from domainflow.api.unit_of_work import PostgresUnitOfWork
from domainflow.kit.database import Database
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, unique

pytestmark = pytest.mark.integration

# A refill every 10 s: however loaded the machine, the few requests of a test fit well
# inside one interval, so what is refused is decided by the budget, not by timing.
RATE, BURST = 0.1, 3


@pytest.fixture(scope="module")
async def api(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    settings = api_settings(
        await database_url("api_throttle"),
        amqp_url,
        write_limit={"domain_write_rate": RATE, "domain_write_burst": BURST},
        # no provisioner runs: answer 202 at once
        waits={"create_seconds": 0.01, "verify_seconds": 0.01},
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


async def _add(api: ApiHarness, key: str, name: str | None = None) -> tuple[int, dict[str, str]]:
    response = await api.client.post(
        DOMAINS,
        json={"domain": f"{unique('t')}.example.com" if name is None else name},
        headers=auth(key),
    )
    return response.status_code, {**response.headers, **{"body": response.text}}


async def test_a_burst_then_429_with_retry_after_then_admitted_again(api: ApiHarness) -> None:
    team, other = await api.key(), await api.key()
    assert [(await _add(api, team.plaintext))[0] for _ in range(BURST)] == [202] * BURST

    refused = await api.client.post(
        DOMAINS, json={"domain": f"{unique('t')}.example.com"}, headers=auth(team.plaintext)
    )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["reason"] == "rate_limited"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 1 / RATE + 1
    assert error["details"]["retry_after"] == retry_after
    assert "retry in" in error["message"]
    listed = await api.client.get(DOMAINS, headers=auth(team.plaintext))
    assert len(listed.json()["data"]) == BURST  # the refused request created nothing

    assert (await _add(api, other.plaintext))[0] == 202  # another team has its own budget
    await asyncio.sleep(retry_after)
    assert (await _add(api, team.plaintext))[0] == 202


async def test_verify_and_delete_spend_the_same_budget(api: ApiHarness) -> None:
    team = await api.key()
    domain = await api.pending_domain(team)  # one create
    verify = f"{DOMAINS}/{domain['id']}/verify"
    statuses = [
        (await api.client.post(verify, headers=auth(team.plaintext))).status_code
        for _ in range(BURST)
    ]
    assert statuses == [503, 503, 429]  # no verifier answers here: "retry", then the budget
    deleting = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert deleting.status_code == 429
    assert await api.status_of(domain["id"]) == "pending"


async def test_refused_input_costs_nothing(api: ApiHarness) -> None:
    team = await api.key()
    for bad in ("Example.COM", "https://x.example", "", "co.uk"):
        assert (await _add(api, team.plaintext, bad))[0] == 400
    assert [(await _add(api, team.plaintext))[0] for _ in range(BURST)] == [202] * BURST


async def test_replicas_share_one_budget(api: ApiHarness) -> None:
    team = await api.key()
    team_id = await api.fetchval("SELECT id FROM teams WHERE public_id = $1", team.team_public_id)
    url = api.settings.database.url
    first, second = await Database.connect(url, size=2), await Database.connect(url, size=2)
    try:
        replicas = [PostgresUnitOfWork(db) for db in (first, second)]
        waits = [await _spend(replicas[n % 2], team_id) for n in range(5)]
    finally:
        await first.close()
        await second.close()
    assert waits[:BURST] == [0.0] * BURST
    assert all(0 < wait <= 1 / RATE for wait in waits[BURST:])


async def _spend(uow: PostgresUnitOfWork, team_id: int) -> float:
    async with uow.transaction() as work:
        decision = await work.teams.spend(team_id, "domain_writes", rate=RATE, burst=BURST)
    return decision.retry_after
