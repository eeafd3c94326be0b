"""The verifier over the bus: a VerifyRequested probes the real DoH sandbox and moto's SES.

One replica runs in-process on a fresh database and a RabbitMQ vhost of the session's own; the
test publishes the api's events and reads the verifier's answers off a queue of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aio_pika
import aioboto3
import pytest

from domainflow.contracts import (
    CheckOutcome,
    DnsRecords,
    DomainDeleted,
    DomainStatus,
    DomainStatusChanged,
    Event,
    RecordKind,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
    VerifyRequested,
)
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit.database import Database
from domainflow.kit.envelope import decode, encode
from domainflow.kit.runtime import ServiceRuntime, kit_migrations
from domainflow.kit.settings import BrokerSettings, OutboxSettings, RedeliverySettings
from domainflow.sandbox.dns import DnsSandbox
from domainflow.verifier.main import migrations, open_verifier, start
from domainflow.verifier.settings import (
    DnsSettings,
    ReverifySettings,
    VerifierDatabaseSettings,
    VerifierHealthSettings,
    VerifierSesSettings,
    VerifierSettings,
)
from tests.plugins.dns import SandboxZones, make_records

pytestmark = pytest.mark.integration

REGION = "us-east-1"


async def create_identities(domains: list[str], region: str = REGION) -> None:
    """Moto's SES answers DKIM `Success` for every identity it holds, NotStarted otherwise."""
    async with aioboto3.Session().client("ses", region_name=region) as ses:
        for domain in domains:
            await ses.verify_domain_identity(Domain=domain)


class Bus:
    """Publishes as the api would, and collects what the verifier publishes."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, exchange: Any) -> None:
        self.channel = channel
        self.exchange = exchange
        self.received: list[Event] = []

    async def publish(self, event: Event) -> None:
        await self.exchange.publish(
            aio_pika.Message(encode(event), content_type="application/json"),
            routing_key=event.TYPE,
        )

    async def answer_to(self, request: Event, within: float = 30.0) -> VerificationCompleted:
        for _ in range(int(within / 0.05)):
            for event in self.received:
                if (
                    isinstance(event, VerificationCompleted)
                    and event.causation_id == request.event_id
                ):
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no answer to {request.TYPE} {request.event_id} in {within} s")


@pytest.fixture
async def verifier(
    amqp_url: str,
    database_url: Callable[[str], Awaitable[str]],
    dns_sandbox: DnsSandbox,
    moto_server: Any,
    unused_tcp_port: int,
) -> AsyncIterator[tuple[ServiceRuntime, Bus]]:
    settings = VerifierSettings(
        broker=BrokerSettings(amqp_url=amqp_url),
        database=VerifierDatabaseSettings(url=await database_url("verifier_service")),
        health=VerifierHealthSettings(port=unused_tcp_port),
        dns=DnsSettings(
            doh_url=dns_sandbox.doh_url, doh_ca_file=str(dns_sandbox.ca_file), doh_timeout=2.0
        ),
        ses=VerifierSesSettings(rate=20.0),
        # this module drives the consumers; the cycle has its own tests
        reverify=ReverifySettings(tick=3600.0),
        redelivery=RedeliverySettings(backoff_max=1.0),
        outbox=OutboxSettings(poll_interval=0.2),
    )
    runtime = ServiceRuntime("verifier", settings, settings.database.url)
    connection = await aio_pika.connect_robust(amqp_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(connection.close)
        channel = await connection.channel()
        await start(runtime, settings, stack)
        stack.push_async_callback(runtime.close)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        bus = Bus(channel, exchange)
        queue = await channel.declare_queue(f"test.verifier.{uuid.uuid4().hex[:8]}", exclusive=True)
        await queue.bind(exchange, routing_key=VerificationCompleted.TYPE)

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                bus.received.append(decode(message.body))

        await queue.consume(collect)
        yield runtime, bus


def verify_request(domain: str, records: DnsRecords) -> VerifyRequested:
    return VerifyRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:12]}",
        team_id="team_abc123",
        domain_id=f"mdom_{uuid.uuid4().hex[:12]}",
        domain=domain,
        region=REGION,
        records=records,
    )


def by_kind(answer: VerificationCompleted) -> dict[RecordKind, Any]:
    return {check.record: check for check in answer.checks}


async def test_all_records_in_place_and_dkim_success_passes(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    runtime, bus = verifier
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    await create_identities([domain])

    request = verify_request(domain, records)
    await bus.publish(request)
    answer = await bus.answer_to(request)

    assert answer.outcome == VerificationOutcome.PASSED
    assert answer.trigger == VerificationTrigger.MANUAL
    assert answer.ses_dkim_status == "success"
    # The identity's other attributes, read in the same round (moto says Success for every
    # identity it holds; no MAIL FROM domain was set on this one).
    assert answer.ses_identity is not None
    assert answer.ses_identity.dkim_signing_enabled is True
    assert answer.ses_identity.verification_status == "success"
    assert answer.ses_identity.verified_for_sending is True
    assert answer.ses_identity.mail_from_status == "not_started"
    assert answer.correlation_id == request.correlation_id
    assert answer.team_id == request.team_id
    assert answer.domain_id == request.domain_id
    # These records carry no MAIL FROM subdomain, so its two checks are not made.
    reported_only = (RecordKind.DKIM, RecordKind.MAIL_FROM_MX, RecordKind.MAIL_FROM_SPF)
    assert [c.record for c in answer.checks] == [k for k in RecordKind if k not in reported_only]
    assert all(c.outcome == CheckOutcome.PASS for c in answer.checks)
    async with runtime.db.pool.acquire() as conn:
        history = await conn.fetch(
            "SELECT trigger, outcome, event_id FROM check_history WHERE domain_id = $1",
            request.domain_id,
        )
    assert [(h["trigger"], h["outcome"], h["event_id"]) for h in history] == [
        ("manual", "passed", answer.event_id)
    ]


async def test_a_send_only_domain_verifies_without_an_mx(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    _, bus = verifier
    domain = dns_zones.new_domain()
    records = make_records(domain).model_copy(update={"mx": []})  # as the api sends them
    dns_zones.place(records)
    dns_zones.set_records(domain, "MX", ["10 mx.elsewhere.example"])  # its mail goes elsewhere
    await create_identities([domain])

    request = verify_request(domain, records)
    await bus.publish(request)
    answer = await bus.answer_to(request)

    assert answer.outcome == VerificationOutcome.PASSED
    assert all(c.outcome == CheckOutcome.PASS for c in answer.checks)
    assert answer.warnings == []  # an MX elsewhere is no conflict for a domain that only sends


async def test_missing_and_wrong_records_fail_with_their_reasons(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    _, bus = verifier
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    dns_zones.set_records(domain, "MX", ["20 mail.sendmux.ai"])  # priority 20, not 10
    dns_zones.remove_name(records.dmarc.name)  # DMARC missing
    await create_identities([domain])

    request = verify_request(domain, records)
    await bus.publish(request)
    answer = await bus.answer_to(request)

    assert answer.outcome == VerificationOutcome.FAILED
    checks = by_kind(answer)
    assert checks[RecordKind.MX].outcome == CheckOutcome.FAIL
    assert checks[RecordKind.MX].reason == "wrong_priority"
    assert checks[RecordKind.DMARC].outcome == CheckOutcome.FAIL
    assert checks[RecordKind.DMARC].reason == "record_missing"
    assert checks[RecordKind.SPF].outcome == CheckOutcome.PASS
    assert checks[RecordKind.VERIFICATION_TXT].outcome == CheckOutcome.PASS


async def test_nothing_placed_and_no_ses_identity_fails(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    _, bus = verifier
    domain = dns_zones.new_domain()
    request = verify_request(domain, make_records(domain))
    await bus.publish(request)
    answer = await bus.answer_to(request)

    assert answer.outcome == VerificationOutcome.FAILED
    assert answer.ses_dkim_status == "not_started"
    assert answer.ses_identity is not None  # SES answered: it knows nothing of the domain
    assert answer.ses_identity.verification_status == "not_started"
    assert answer.ses_identity.verified_for_sending is False
    dns, dkim = answer.checks[:4], answer.checks[4:]
    assert {c.reason for c in dns} == {"record_missing"}
    # SES has not started DKIM: the CNAMEs as DNS shows them say why
    assert [(c.record, c.reason) for c in dkim] == [(RecordKind.DKIM, "dkim_cname_missing")]
    assert answer.warnings == []  # nothing published, nothing to conflict with


async def test_a_verify_carries_preflight_warnings(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    _, bus = verifier
    domain = dns_zones.new_domain()
    dns_zones.set_records(domain, "TXT", ["v=spf1 mx -all"])
    dns_zones.set_records(f"_dmarc.{domain}", "TXT", ["v=DMARC1; p=none"])
    request = verify_request(domain, make_records(domain))
    await bus.publish(request)
    answer = await bus.answer_to(request)
    assert [w.code for w in answer.warnings] == ["existing_spf", "dmarc_weaker"]


async def test_a_stopped_resolver_makes_the_probe_inconclusive(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    _, bus = verifier
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    await create_identities([domain])
    dns_zones.sandbox.stop_resolver()  # dnsdist answers SERVFAIL; cleanup starts it again

    request = verify_request(domain, records)
    await bus.publish(request)
    answer = await bus.answer_to(request)

    assert answer.outcome == VerificationOutcome.INCONCLUSIVE
    assert answer.ses_dkim_status == "success"  # SES answered; our resolver did not
    assert {c.outcome for c in answer.checks} == {CheckOutcome.INCONCLUSIVE}
    assert {c.reason for c in answer.checks} == {"resolver_unavailable"}


async def test_a_redelivered_request_is_answered_once(
    verifier: tuple[ServiceRuntime, Bus], dns_zones: SandboxZones
) -> None:
    runtime, bus = verifier
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    await create_identities([domain])
    request = verify_request(domain, records)
    await bus.publish(request)
    await bus.publish(request)  # the same event id twice: at-least-once delivery
    await bus.answer_to(request)
    await asyncio.sleep(1.0)
    answers = [
        e for e in bus.received if isinstance(e, VerificationCompleted)
        and e.causation_id == request.event_id
    ]  # fmt: skip
    assert len(answers) == 1
    async with runtime.db.pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM check_history WHERE domain_id = $1", request.domain_id
        )
    assert count == 1


async def _schedule_row(runtime: ServiceRuntime, domain_id: str) -> dict[str, Any] | None:
    async with runtime.db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, next_check_at, records FROM schedule WHERE domain_id = $1", domain_id
        )
    return None if row is None else dict(row)


async def _until(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not so within {within} s")


async def test_status_changes_and_deletion_keep_the_schedule(
    verifier: tuple[ServiceRuntime, Bus],
) -> None:
    runtime, bus = verifier
    domain = f"mail.acme-{uuid.uuid4().hex[:8]}.com"
    domain_id = f"mdom_{uuid.uuid4().hex[:12]}"
    records = make_records(domain)

    def changed(old: DomainStatus | None, new: DomainStatus) -> DomainStatusChanged:
        return DomainStatusChanged(
            correlation_id="req_test",
            team_id="team_abc123",
            domain_id=domain_id,
            domain=domain,
            region=REGION,
            old_status=old,
            new_status=new,
            reason="test",
            records=records,
        )

    async def status_is(status: str) -> bool:
        row = await _schedule_row(runtime, domain_id)
        return row is not None and row["status"] == status

    await bus.publish(changed(DomainStatus.PROVISIONING, DomainStatus.PENDING))
    await _until(lambda: status_is("pending"))
    row = await _schedule_row(runtime, domain_id)
    assert row is not None
    assert row["next_check_at"] is not None
    assert DnsRecords.model_validate(row["records"]) == records
    first_due = row["next_check_at"]

    await bus.publish(changed(DomainStatus.PENDING, DomainStatus.VERIFIED))
    await _until(lambda: status_is("verified"))
    row = await _schedule_row(runtime, domain_id)
    assert row is not None
    assert row["next_check_at"] == first_due  # the cadence is kept

    await bus.publish(changed(DomainStatus.VERIFIED, DomainStatus.FAILED))
    await _until(lambda: status_is("failed"))
    row = await _schedule_row(runtime, domain_id)
    assert row is not None
    assert row["next_check_at"] is None  # recovers only through a manual verify

    await bus.publish(
        DomainDeleted(
            correlation_id="req_test", team_id="team_abc123", domain_id=domain_id, domain=domain
        )
    )
    await _until(lambda: status_is("deleted"))
    row = await _schedule_row(runtime, domain_id)
    assert row is not None
    assert (row["next_check_at"], row["records"]) == (None, None)


async def test_ses_out_of_reach_makes_the_probe_inconclusive(
    database_url: Callable[[str], Awaitable[str]],
    dns_sandbox: DnsSandbox,
    dns_zones: SandboxZones,
    moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing answers
    settings = VerifierSettings(
        dns=DnsSettings(doh_url=dns_sandbox.doh_url, doh_ca_file=str(dns_sandbox.ca_file)),
        ses=VerifierSesSettings(rate=20.0, timeout=3.0),
    )
    url = await database_url("verifier_ses_down")
    db = await Database.prepare(url, [*kit_migrations(), *migrations()], size=2)
    try:
        async with open_verifier(db, settings) as verifier:
            verdict = await verifier.probe.check(domain, REGION, records)
    finally:
        await db.close()
    assert verdict.ses_dkim_status is None
    assert verdict.ses_identity is None
    assert verdict.outcome == VerificationOutcome.INCONCLUSIVE
    assert {c.outcome for c in verdict.checks} == {CheckOutcome.PASS}  # DNS was fine
