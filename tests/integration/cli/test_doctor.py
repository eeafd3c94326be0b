"""`domainflow doctor` against real parts: a healthy install passes, and each way an install
breaks is named with its fix (PostgreSQL, RabbitMQ, moto server, the DoH sandbox)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from domainflow.cli.doctor import Finding, diagnose
from domainflow.cli.migrations import DATABASES, service_migrations
from domainflow.contracts.topology import SUBSCRIPTIONS, dead_letter_queue_name
from domainflow.kit.database import Database
from domainflow.kit.messaging import consumer_queue, declare_topology
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox

pytestmark = pytest.mark.integration

SENDER = "Domain alerts <alerts@doctor.example>"


@pytest.fixture(scope="module")
async def healthy_env(
    database_url: Callable[[str], Awaitable[str]],
    amqp_vhost: Callable[[str], str],
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
) -> dict[str, str]:
    """The settings of an install that is set up right, every part real."""
    env = {
        "DOMAINFLOW_AMQP_URL": amqp_vhost("doctor"),
        "DOMAINFLOW_MAILSERVER_DATABASE_URL": mailserver_database_url,
        "DOMAINFLOW_DOH_URL": dns_sandbox.doh_url,
        "DOMAINFLOW_DOH_CA_FILE": str(dns_sandbox.ca_file),
        "DOMAINFLOW_NOTIFY_FROM": SENDER,
    }
    for service in DATABASES:
        url = await database_url(f"doctor_{service}")
        await (await Database.prepare(url, service_migrations(service), size=1)).close()
        env[f"DOMAINFLOW_{service.upper()}_DATABASE_URL"] = url
    broker = RabbitBroker(env["DOMAINFLOW_AMQP_URL"], logger=None)
    await broker.connect()
    queues = [
        consumer_queue(consumer, event_type)
        for consumer, event_types in SUBSCRIPTIONS.items()
        for event_type in event_types
    ]
    await declare_topology(broker, queues)
    await broker.stop()
    moto_server.verify_sender("alerts@doctor.example")
    return env


@pytest.fixture
def settings(healthy_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The healthy settings in the environment; a test may spoil one of them."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in healthy_env.items():
            patch.setenv(name, value)
        patch.setenv("AWS_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])  # moto, restored after
        yield healthy_env


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


async def test_a_healthy_install_passes_every_check(settings: dict[str, str]) -> None:
    findings = await diagnose()
    assert [f for f in findings if not f.ok] == []
    assert set(_by_check(findings)) == {
        "api-database",
        "provisioner-database",
        "verifier-database",
        "notifier-database",
        "mailserver-database",
        "sagas",
        "ses-capacity",
        "rabbitmq",
        "dead-letters",
        "ses",
        "ses-sender",
        "doh",
    }
    assert "alerts@doctor.example" in _by_check(findings)["ses-sender"].detail


async def test_a_saga_stopped_for_an_operator_is_named_with_its_step_and_error_class(
    settings: dict[str, str],
) -> None:
    url = settings["DOMAINFLOW_PROVISIONER_DATABASE_URL"]
    db = await Database.prepare(url, service_migrations("provisioner"), size=1)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                """
                INSERT INTO sagas (domain_id, kind, team_id, domain, region, state, steps,
                                   max_attempts, correlation_id, causation_id, failed_step,
                                   error, error_class)
                VALUES ('mdom_stuck', 'deprovision', 'team_1', 'stuck.example', 'us-east-1',
                        'needs_operator', '[]', 3, 'req_1', gen_random_uuid(), 'ses_identity',
                        'Amazon SES answered AccessDenied: arn:aws:iam::123456789012',
                        'ses:AccessDenied')
                """
            )
        found = _by_check(await diagnose())["sagas"]
        assert not found.ok
        assert "stuck.example (mdom_stuck): deprovision stopped at ses_identity" in found.detail
        assert "ses:AccessDenied" in found.detail
        assert "domainflow domains release" in (found.fix or "")
    finally:
        async with db.transaction() as conn:
            await conn.execute("DELETE FROM sagas WHERE domain_id = 'mdom_stuck'")
        await db.close()
    assert _by_check(await diagnose())["sagas"].ok


async def test_a_region_whose_ses_accounts_are_full_is_named(settings: dict[str, str]) -> None:
    url = settings["DOMAINFLOW_API_DATABASE_URL"]
    accounts = '[{"name": "only", "regions": ["eu-west-1"], "identity_cap": 1}]'
    db = await Database.prepare(url, service_migrations("api"), size=1)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO ses_identity_counts (account, region, identities)"
                " VALUES ('only', 'eu-west-1', 1)"
            )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOMAINFLOW_SES_ACCOUNTS", accounts)
            found = _by_check(await diagnose())["ses-capacity"]
            assert not found.ok
            assert "eu-west-1" in found.detail
            assert "DOMAINFLOW_SES_ACCOUNTS" in (found.fix or "")
            patch.setenv("DOMAINFLOW_SES_IDENTITY_MARGIN", "0")
            patch.setenv(
                "DOMAINFLOW_SES_ACCOUNTS",
                accounts.replace('"identity_cap": 1', '"identity_cap": 3'),
            )
            found = _by_check(await diagnose())["ses-capacity"]
            assert found.ok, found
            assert "eu-west-1: 2 free" in found.detail
    finally:
        async with db.transaction() as conn:
            await conn.execute("DELETE FROM ses_identity_counts WHERE account = 'only'")
        await db.close()


async def test_an_unmigrated_database_names_the_migrations_missing(
    settings: dict[str, str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    os.environ["DOMAINFLOW_VERIFIER_DATABASE_URL"] = await database_url("doctor_empty")
    found = _by_check(await diagnose())["verifier-database"]
    assert not found.ok
    assert "001_verifier.sql" in found.detail
    assert "domainflow migrate verifier" in (found.fix or "")

    os.environ["DOMAINFLOW_API_DATABASE_URL"] = settings["DOMAINFLOW_API_DATABASE_URL"] + "_gone"
    found = _by_check(await diagnose())["api-database"]
    assert (found.ok, found.detail) == (False, "the database does not exist")


async def test_a_sender_ses_has_not_verified_is_named(settings: dict[str, str]) -> None:
    os.environ["DOMAINFLOW_NOTIFY_FROM"] = "ops@unverified.example"
    findings = _by_check(await diagnose())
    assert findings["ses"].ok  # SES answers; it is the sender that would be refused
    assert not findings["ses-sender"].ok
    assert "ops@unverified.example" in findings["ses-sender"].detail
    assert findings["ses-sender"].fix is not None
    assert "unverified.example" in findings["ses-sender"].fix


async def test_unreachable_ses_and_doh_are_named_with_their_settings(
    settings: dict[str, str], unused_tcp_port: int
) -> None:
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{unused_tcp_port}"
    os.environ["DOMAINFLOW_DOH_URL"] = f"https://127.0.0.1:{unused_tcp_port}/dns-query"
    findings = _by_check(await diagnose())
    assert not findings["ses"].ok
    assert "AWS_ENDPOINT_URL" in (findings["ses"].fix or "")
    assert not findings["doh"].ok
    assert "no domain would verify" in findings["doh"].detail
    assert "DOMAINFLOW_DOH_URL" in (findings["doh"].fix or "")


async def test_parked_messages_are_counted_and_the_cli_exits_non_zero(
    settings: dict[str, str],
) -> None:
    queue = "notifier.notification-requested"
    connection = await aio_pika.connect(settings["DOMAINFLOW_AMQP_URL"])
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}"), routing_key=dead_letter_queue_name(queue)
        )
        found = _by_check(await diagnose())["dead-letters"]
        assert not found.ok
        assert found.detail == f"1 parked in {queue}.dlq"
        assert f"dead-letters show {queue}" in (found.fix or "")

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "domainflow.cli",
            "doctor",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 1, err.decode()
        assert f"FAIL  dead-letters          1 parked in {queue}.dlq" in out.decode()
        assert "ok    ses-sender" in out.decode()
        assert "1 problem(s): dead-letters" in err.decode()
    finally:
        dlq = await channel.get_queue(dead_letter_queue_name(queue))
        await dlq.purge()
        await connection.close()


async def test_counting_parked_messages_failing_is_a_finding_not_a_traceback(
    settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # RabbitMQ answers the topology check (real), then the count fails: the connection drops.
    async def dropped(amqp_url: str) -> list[object]:
        raise aio_pika.exceptions.AMQPConnectionError("connection reset by peer")

    monkeypatch.setattr("domainflow.cli.doctor.dead_letters.parked", dropped)
    findings = _by_check(await diagnose())
    assert findings["rabbitmq"].ok
    assert not findings["dead-letters"].ok
    assert "connection reset by peer" in findings["dead-letters"].detail
    assert findings["ses"].ok  # the other checks still ran
