"""The api's `/metrics`: on the operator's listener only, counts kept right, scrapers harmless."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from domainflow.api.app import create_app
from domainflow.api.teams.service import NewKey
from domainflow.contracts import DomainStatus
from domainflow.kit.metrics import Gauge
from domainflow.kit.runtime import ServiceRuntime
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import DOMAINS, ApiHarness, auth
from tests.integration.api.test_api_operators import _deprovisioned

pytestmark = pytest.mark.integration

COUNTED = [status for status in DomainStatus if status is not DomainStatus.DELETED]


def _counts(text: str) -> dict[str, int]:
    found = dict(
        re.findall(r'^domainflow_domains\{service="api",status="(\w+)"\} (\d+)$', text, re.M)
    )
    return {status: int(value) for status, value in found.items()}


async def _truth(api: ApiHarness) -> dict[str, int]:
    """Counted the slow way, over every row, to hold the kept counts against."""
    counts = {status.value: 0 for status in COUNTED}

    async def run() -> None:
        async with api.db.pool.acquire() as conn:
            for row in await conn.fetch(
                "SELECT status, count(*) AS n FROM domains WHERE status <> 'deleted'"
                " GROUP BY status"
            ):
                counts[row["status"]] = row["n"]

    await api.call(run)
    return counts


async def test_the_public_port_answers_404_for_metrics(api: ApiHarness, team: NewKey) -> None:
    await api.pending_domain(team)
    for headers in ({}, auth(team.plaintext)):
        answer = await api.client.get("/metrics", headers=headers)
        assert answer.status_code == 404
        assert "domainflow_" not in answer.text
    served = await api.scrape()
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE domainflow_outbox_pending gauge" in served.text
    assert _counts(served.text)["pending"] >= 1
    # The operator's listener is the operator's: it serves nothing of the API.
    async with httpx.AsyncClient() as operator:
        api_path = api.metrics_url.removesuffix("/metrics") + DOMAINS
        assert (await operator.get(api_path, headers=auth(team.plaintext))).status_code == 404


async def test_the_counts_follow_creates_moves_and_deletes(api: ApiHarness, team: NewKey) -> None:
    before = _counts((await api.scrape()).text)
    assert before == await _truth(api)
    added = [await api.add_domain(team.plaintext) for _ in range(3)]  # provisioning
    await api.pending_domain(team)
    await api.verified_domain(team)
    gone = await api.pending_domain(team)
    deleting = await api.client.delete(f"{DOMAINS}/{gone['id']}", headers=auth(team.plaintext))
    assert deleting.status_code in (200, 202), deleting.text
    assert deleting.json()["data"]["state"] == "deleting"
    middle = _counts((await api.scrape()).text)
    assert middle == await _truth(api)
    assert middle["provisioning"] == before["provisioning"] + len(added)
    assert middle["pending"] == before["pending"] + 1
    assert middle["verified"] == before["verified"] + 1
    assert middle["deleting"] == before["deleting"] + 1
    await _deprovisioned(api, team.team_public_id, gone)
    assert await api.status_of(gone["id"]) == "deleted"
    after = _counts((await api.scrape()).text)
    assert after == await _truth(api)
    assert after["deleting"] == before["deleting"]  # a deleted domain is counted nowhere


async def test_every_state_is_counted_whichever_connection_moves_it(
    api: ApiHarness, team: NewKey
) -> None:
    """Moves from many connections (the count rows are per connection), through every state
    the state machine has, hard deletes too: the kept counts equal a full count."""
    domains = [await api.add_domain(team.plaintext) for _ in range(len(COUNTED) * 2)]
    ids = [domain["id"] for domain in domains]

    async def move(domain_id: str, status: str) -> None:
        conn = await asyncpg.connect(api.settings.database.url)
        try:
            await conn.execute(
                "UPDATE domains SET status = $2 WHERE public_id = $1", domain_id, status
            )
        finally:
            await conn.close()

    states = [s.value for s in DomainStatus]
    for turn in range(len(states)):
        await asyncio.gather(
            *(move(domain_id, states[(i + turn) % len(states)]) for i, domain_id in enumerate(ids))
        )
        assert _counts((await api.scrape()).text) == await _truth(api), states[turn]
    conn = await asyncpg.connect(api.settings.database.url)
    try:
        await conn.execute(
            "DELETE FROM domain_timeline WHERE domain_id IN"
            " (SELECT id FROM domains WHERE public_id = ANY($1))",
            ids[:3],
        )
        await conn.execute("DELETE FROM domains WHERE public_id = ANY($1)", ids[:3])
    finally:
        await conn.close()
    assert _counts((await api.scrape()).text) == await _truth(api)


@pytest.fixture
async def small_api(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    """An api on a pool of 3 connections: fewer than there are scrapers, by far."""
    settings = api_settings(await database_url("apiscrapers"), amqp_url, database={"pool_size": 3})
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


SCRAPERS = 64
HOLD = 0x6D6574726963  # an advisory lock the test holds to keep a scrape's reading going


async def test_64_scrapers_leave_an_authenticated_read_answering(small_api: ApiHarness) -> None:
    """64 scrapes held mid-reading (a gauge waits on a lock the test holds): they share one
    reading on one connection, so an authenticated read still gets a connection and answers;
    then every scrape answers too."""
    api = small_api
    team = await api.key()
    domain = await api.add_domain(team.plaintext)
    runtime: ServiceRuntime = api.app.state.runtime
    runtime.gauges.append(
        Gauge(
            "domainflow_test_held",
            "A reading the test holds.",
            f"SELECT 1 AS value FROM pg_advisory_xact_lock_shared({HOLD})",
        )
    )
    holder = await asyncpg.connect(api.settings.database.url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", HOLD)
        limits = httpx.Limits(max_connections=SCRAPERS)
        async with httpx.AsyncClient(limits=limits, timeout=120) as operator:
            scrapes = [asyncio.create_task(operator.get(api.metrics_url)) for _ in range(SCRAPERS)]

            async def waiting_on_the_lock() -> int:
                n: int = await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
                return n

            async def connected() -> int:
                return sum(1 for line in _tcp_lines() if line == _established(api))

            for _ in range(600):  # until the scrapes are in and one reading waits
                if await waiting_on_the_lock() >= 1 and await connected() >= SCRAPERS:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the scrapes never all reached the operator's listener")
            read = asyncio.create_task(
                api.client.get(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
            )
            await asyncio.wait({read}, timeout=120)
            answered_first = read.done() and not any(scrape.done() for scrape in scrapes)
            readings = await waiting_on_the_lock()
            await holder.execute("SELECT pg_advisory_unlock($1)", HOLD)
            assert answered_first, "the read waited for the scrapes to be answered"
            assert readings == 1, "the scrapes held more than one connection"
            assert (await read).status_code == 200
            answers = await asyncio.gather(*scrapes)
    finally:
        await holder.close()
    assert [answer.status_code for answer in answers] == [200] * SCRAPERS
    assert all("domainflow_test_held" in answer.text for answer in answers)


def _established(api: ApiHarness) -> str:
    return f"{api.app.state.metrics_port:04X}:01"


def _tcp_lines() -> list[str]:
    """(local port, state) of each IPv4 socket, as the kernel lists them (`:01` established)."""
    lines = []
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            lines.append(f"{fields[1].rsplit(':', 1)[1]}:{fields[3]}")
    return lines
