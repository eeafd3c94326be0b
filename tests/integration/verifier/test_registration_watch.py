"""The registration and delegation watch against the DoH sandbox and a local RDAP stand-in.

There is no internet here, so RDAP is a small HTTP server on loopback answering RFC 9083
domain objects; `DOMAINFLOW_RDAP_URL` points the verifier at it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from domainflow.api.domain.events import expiry_notice, newly_expiring
from domainflow.api.domain.model import Domain
from domainflow.contracts import DomainStatus, VerificationCompleted
from domainflow.kit.database import Database
from domainflow.kit.envelope import decode
from domainflow.kit.runtime import kit_migrations
from domainflow.notifier.messages import compose
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.ports import listening_port
from domainflow.verifier.adapters.doh import DohResolver
from domainflow.verifier.adapters.rdap import RdapClient
from domainflow.verifier.main import migrations, open_verifier
from domainflow.verifier.settings import (
    DnsSettings,
    RegistrationSettings,
    VerifierDatabaseSettings,
    VerifierSesSettings,
    VerifierSettings,
)
from domainflow.verifier.watch import RegistrationWatch
from tests.integration.verifier.test_reverify_cycle import schedule
from tests.plugins.dns import SandboxZones

pytestmark = pytest.mark.integration


class Rdap:
    """A registry's RDAP service: `expiries[zone]` is what it says, absent zones are 404."""

    def __init__(self) -> None:
        self.expiries: dict[str, datetime] = {}
        self.asked: list[str] = []
        self.url = ""

    async def domain(self, request: web.Request) -> web.Response:
        zone = request.match_info["zone"]
        self.asked.append(zone)
        if zone not in self.expiries:
            return web.json_response({"errorCode": 404}, status=404)
        events = [
            {"eventAction": "registration", "eventDate": "2020-01-01T00:00:00Z"},
            {"eventAction": "expiration", "eventDate": self.expiries[zone].isoformat()},
        ]
        return web.json_response(
            {"objectClassName": "domain", "ldhName": zone, "events": events},
            content_type="application/rdap+json",
        )


@pytest.fixture
async def rdap() -> AsyncIterator[Rdap]:
    service = Rdap()
    app = web.Application()
    app.router.add_get("/rdap/domain/{zone}", service.domain)
    runner = web.AppRunner(app)
    await runner.setup()
    port = listening_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    service.url = f"http://127.0.0.1:{port}/rdap"
    try:
        yield service
    finally:
        await runner.cleanup()


@pytest.fixture
async def db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    url = await database_url("verifier_watch")
    database = await Database.prepare(url, [*kit_migrations(), *migrations()], size=5)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def doh(dns_sandbox: DnsSandbox) -> AsyncIterator[DohResolver]:
    async with DohResolver(dns_sandbox.doh_url, ca_file=dns_sandbox.ca_file, timeout=2.0) as r:
        yield r


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_move_to_other_nameservers_is_reported_once(
    db: Database, doh: DohResolver, dns_zones: SandboxZones, clock: Clock
) -> None:
    domain = dns_zones.new_domain()
    zone = domain.partition(".")[2]
    dns_zones.set_records(zone, "NS", ["ns1.old-dns.net.", "ns2.old-dns.net."])
    watch = RegistrationWatch(db, doh, None, interval=timedelta(days=1), clock=clock)
    assert await watch.observe([domain]) == {domain: []}  # the baseline

    dns_zones.set_records(zone, "NS", ["ns1.new-dns.org.", "ns2.new-dns.org."])
    assert await watch.observe([domain]) == {domain: []}  # not looked at again within a day
    clock.now += timedelta(days=1)
    [warning] = (await watch.observe([domain]))[domain]
    assert warning.code == "nameservers_changed"
    assert warning.found == ["ns1.new-dns.org", "ns2.new-dns.org"]
    assert "moved from ns1.old-dns.net, ns2.old-dns.net to ns1.new-dns.org" in warning.message
    clock.now += timedelta(days=1)
    assert await watch.observe([domain]) == {domain: []}  # the new set is the baseline now


async def test_an_expiry_under_30_days_is_reported_from_rdap(
    db: Database, doh: DohResolver, dns_zones: SandboxZones, clock: Clock, rdap: Rdap
) -> None:
    soon, later = dns_zones.new_domain(), dns_zones.new_domain()
    rdap.expiries[soon.partition(".")[2]] = clock.now + timedelta(days=12, hours=1)
    rdap.expiries[later.partition(".")[2]] = clock.now + timedelta(days=200)
    async with RdapClient(rdap.url) as client:
        watch = RegistrationWatch(db, doh, client, interval=timedelta(days=1), clock=clock)
        found = await watch.observe([soon, later])
        assert found[later] == []
        [warning] = found[soon]
        assert warning.code == "registration_expiring"
        assert "(12 days left)" in warning.message
        # Not due again: RDAP is not asked, the stored expiry still warns.
        asked = len(rdap.asked)
        assert [w.code for w in (await watch.observe([soon]))[soon]] == ["registration_expiring"]
        assert len(rdap.asked) == asked


async def test_rdap_that_does_not_answer_is_no_warning(
    db: Database, doh: DohResolver, dns_zones: SandboxZones, clock: Clock
) -> None:
    domain = dns_zones.new_domain()
    async with RdapClient(f"http://127.0.0.1:{listening_port()}/rdap", timeout=1.0) as client:
        watch = RegistrationWatch(db, doh, client, interval=timedelta(days=1), clock=clock)
        assert await watch.observe([domain]) == {domain: []}


async def test_the_cycle_carries_the_watch_warnings(
    db: Database,
    dns_sandbox: DnsSandbox,
    dns_zones: SandboxZones,
    moto_server: Any,
    rdap: Rdap,
) -> None:
    [domain_id] = await schedule(db, dns_zones, 1)
    async with db.pool.acquire() as conn:
        domain = await conn.fetchval("SELECT domain FROM schedule WHERE domain_id = $1", domain_id)
    rdap.expiries[domain.partition(".")[2]] = datetime.now(UTC) + timedelta(days=3)
    settings = VerifierSettings(
        database=VerifierDatabaseSettings(url="unused"),
        dns=DnsSettings(doh_url=dns_sandbox.doh_url, doh_ca_file=str(dns_sandbox.ca_file)),
        ses=VerifierSesSettings(rate=20.0),
        registration=RegistrationSettings(rdap_url=rdap.url),
    )
    async with open_verifier(db, settings) as verifier:
        report = await verifier.cycle.run_once()
    assert report.checked == 1
    async with db.pool.acquire() as conn:
        [body] = await conn.fetch("SELECT body FROM outbox")
    event = decode(body["body"])
    assert [w.code for w in getattr(event, "warnings", [])] == ["registration_expiring"]


async def test_the_notice_window_is_a_setting_and_its_warning_makes_one_owners_mail(
    db: Database,
    dns_sandbox: DnsSandbox,
    dns_zones: SandboxZones,
    moto_server: Any,
    rdap: Rdap,
) -> None:
    """A 45-day expiry is reported under a 60-day window (the default 30 would not: see the
    unit tests); the warning the cycle sends is what the api dates its owners' notice by,
    and what the notifier mails."""
    [domain_id] = await schedule(db, dns_zones, 1)
    async with db.pool.acquire() as conn:
        domain = await conn.fetchval("SELECT domain FROM schedule WHERE domain_id = $1", domain_id)
    ends = datetime.now(UTC) + timedelta(days=45, hours=12)
    rdap.expiries[domain.partition(".")[2]] = ends
    settings = VerifierSettings(
        database=VerifierDatabaseSettings(url="unused"),
        dns=DnsSettings(doh_url=dns_sandbox.doh_url, doh_ca_file=str(dns_sandbox.ca_file)),
        ses=VerifierSesSettings(rate=20.0),
        registration=RegistrationSettings(rdap_url=rdap.url, expiry_notice_days=60),
    )
    async with open_verifier(db, settings) as verifier:
        report = await verifier.cycle.run_once()
    assert report.checked == 1
    async with db.pool.acquire() as conn:
        [body] = await conn.fetch("SELECT body FROM outbox")
    event = decode(body["body"])
    assert isinstance(event, VerificationCompleted)
    [warning] = event.warnings
    assert warning.code == "registration_expiring"
    assert "(45 days left)" in warning.message

    [(dated, told)] = newly_expiring((), event.warnings)
    assert dated == ends
    assert newly_expiring(event.warnings, event.warnings) == []  # the next cycle: no news
    model = Domain(
        pk=1,
        public_id=event.domain_id,
        team_pk=1,
        team_public_id=event.team_id,
        name=event.domain,
        status=DomainStatus.VERIFIED,
        region="us-east-1",
        request_id="req_test",
        created_at=datetime.now(UTC),
        last_warnings=tuple(event.warnings),
    )
    notice = expiry_notice(
        model, dated, told, ["owner@acme.com"], correlation_id="req", causation_id=event.event_id
    )
    mail = compose(notice)
    assert mail.subject == f"Action needed: the registration of {domain} expires on {ends.date()}"
    assert "(45 days left)" in mail.text
    assert "renew" in mail.text.lower()
