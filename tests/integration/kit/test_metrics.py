"""`/metrics`: each service's gauges, read from its real schema, say what is in it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from importlib.resources import files

import aiohttp
import pytest

from domainflow.api.domains.repository import DOMAIN_GAUGES as API_GAUGES
from domainflow.cli.migrations import service_migrations
from domainflow.kit.database import Database, migration_files
from domainflow.kit.metrics import OUTBOX_GAUGES, Gauge, exposition
from domainflow.kit.runtime import ServiceRuntime
from domainflow.kit.settings import BrokerSettings, ServiceSettings
from domainflow.notifier.metrics import GAUGES as NOTIFIER_GAUGES
from domainflow.provisioner.metrics import GAUGES as PROVISIONER_GAUGES
from domainflow.verifier.metrics import GAUGES as VERIFIER_GAUGES

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r'^(\w+)\{service="(\w+)"((?:,\w+="[\w.-]*")*)\} (\S+)$')
LABEL = re.compile(r',\w+="([\w.-]*)"')


async def _database(make: Callable[[str], Awaitable[str]], service: str) -> Database:
    url = await make(f"metrics_{service}")
    return await Database.prepare(url, service_migrations(service), size=2)


async def _samples(db: Database, gauges: tuple[Gauge, ...], service: str) -> dict[str, float]:
    """`name` or `name{label}` -> value, after checking every line is well formed."""
    text = await exposition(db, [*OUTBOX_GAUGES, *gauges], service)
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) domainflow_\w+ ", line), line
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labelled, labels, value = match.groups()
        assert labelled == service
        label = ",".join(LABEL.findall(labels))
        found[f"{name}{{{label}}}" if labels else name] = float(value)
    return found


async def _run(db: Database, *statements: str) -> None:
    async with db.pool.acquire() as conn:
        for statement in statements:
            await conn.execute(statement)


async def test_the_api_counts_domains_by_state_and_the_outbox_backlog(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    db = await _database(database_url, "api")
    try:
        await _run(
            db,
            "INSERT INTO teams (public_id, name) VALUES ('team_m', 'metrics')",
            "INSERT INTO domains (public_id, team_id, domain, status, region, request_id)"
            " SELECT 'mdom_' || n, 1, 'd' || n || '.example', s, 'us-east-1', 'req'"
            " FROM (VALUES (1, 'pending'), (2, 'pending'), (3, 'verified'), (4, 'deleted'))"
            " AS v (n, s)",
            f"INSERT INTO outbox (event_id, routing_key, correlation_id, body, created_at)"
            f" VALUES ('{uuid.uuid4()}', 'domain.requested', 'req', '\\x7b7d',"
            f" now() - interval '90 seconds')",
        )
        found = await _samples(db, API_GAUGES, "api")
    finally:
        await db.close()
    assert found["domainflow_domains{pending}"] == 2
    assert found["domainflow_domains{verified}"] == 1
    assert found["domainflow_domains{failed}"] == 0  # every state is reported, zero or not
    assert "domainflow_domains{deleted}" not in found
    assert found["domainflow_outbox_pending"] == 1
    assert found["domainflow_outbox_oldest_seconds"] >= 90
    assert found["domainflow_verifications_waiting_seconds"] == 0
    # Domains placed before accounts (none recorded) hold identities in the default account.
    assert found["domainflow_ses_identities{,us-east-1}"] == 3


async def test_the_verifier_says_how_far_behind_the_cycle_is(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    db = await _database(database_url, "verifier")
    try:
        await _run(
            db,
            "INSERT INTO schedule (domain_id, team_id, domain, region, status, correlation_id,"
            " status_event_at, next_check_at) SELECT 'dom_' || n, 't', 'x.example', 'us-east-1',"
            " s, 'req', now(), now() + make_interval(secs => d)"
            " FROM (VALUES (1, 'verified', -300), (2, 'pending', 600), (3, 'failed', NULL))"
            " AS v (n, s, d)",
        )
        found = await _samples(db, VERIFIER_GAUGES, "verifier")
    finally:
        await db.close()
    assert found["domainflow_reverify_scheduled"] == 2
    assert found["domainflow_reverify_due"] == 1
    assert 300 <= found["domainflow_reverify_lag_seconds"] < 400
    assert found["domainflow_outbox_pending"] == 0


async def test_the_notifier_and_provisioner_report_what_needs_a_look(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    notifier = await _database(database_url, "notifier")
    provisioner = await _database(database_url, "provisioner")
    try:
        await _run(
            notifier,
            f"INSERT INTO notifications (transition_event_id, recipient, domain_id, domain,"
            f" new_status, state) VALUES ('{uuid.uuid4()}', 'o@x.example', 'dom_1', 'x.example',"
            f" 'failed', 'unconfirmed')",
        )
        await _run(
            provisioner,
            f"INSERT INTO sagas (domain_id, kind, team_id, domain, region, steps, max_attempts,"
            f" correlation_id, causation_id, state, created_at) VALUES ('dom_1', 'provision',"
            f" 't', 'x.example', 'us-east-1', '[]', 3, 'req', '{uuid.uuid4()}', 'running',"
            f" now() - interval '45 seconds')",
        )
        mails = await _samples(notifier, NOTIFIER_GAUGES, "notifier")
        sagas = await _samples(provisioner, PROVISIONER_GAUGES, "provisioner")
    finally:
        await notifier.close()
        await provisioner.close()
    assert mails["domainflow_notifications{unconfirmed}"] == 1
    assert mails["domainflow_notifications{sent}"] == 0
    assert sagas["domainflow_sagas_unfinished{provision}"] == 1
    assert sagas["domainflow_sagas_unfinished{deprovision}"] == 0
    assert sagas["domainflow_sagas_oldest_unfinished_seconds"] >= 45


async def test_a_consumer_serves_them_on_its_health_port(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str, unused_tcp_port: int
) -> None:
    url = await database_url("metrics_runtime")
    runtime = ServiceRuntime(
        "verifier", ServiceSettings(broker=BrokerSettings(amqp_url=amqp_url)), url
    )
    await runtime.open(migration_files(files("domainflow.verifier") / "migrations"))
    try:
        await runtime.serve_health("127.0.0.1", unused_tcp_port)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{unused_tcp_port}/metrics") as answer,
        ):
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await answer.text()
    finally:
        await runtime.close()
    assert 'domainflow_outbox_pending{service="verifier"} 0' in text
