"""`domainflow doctor`: is this installation able to do its job, and if not, what to fix.

A self-hosted install fails in quiet ways: a sender SES has not verified (every owner email
is refused and parks in a DLQ), a DoH URL that does not answer (every probe inconclusive,
no domain ever verifies), a database never migrated. Each check here reads the same
`DOMAINFLOW_*` / `AWS_*` settings the services read, talks to the real system, and says
what is wrong and the command or setting that fixes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from email.utils import parseaddr

import aio_pika
import asyncpg
from aiormq.exceptions import ChannelNotFoundEntity

from domainflow.api.settings import ApiSettings
from domainflow.cli.migrations import DATABASES, database_url, service_migrations
from domainflow.cli.stack import state_dir
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import dead_letters
from domainflow.kit.aws import AwsClients, ses_error
from domainflow.kit.failover import Nodes, connect_any
from domainflow.notifier.settings import NotifierSettings
from domainflow.provisioner.adapters import repository
from domainflow.provisioner.settings import ProvisionerSettings
from domainflow.verifier.adapters.doh import DohResolver
from domainflow.verifier.checks import Unavailable
from domainflow.verifier.settings import VerifierSettings

TIMEOUT = 10.0  # seconds for any one check: a doctor that hangs diagnoses nothing


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str | None = None


async def _connect(
    check: str, url: str, variable: str, create: str = "run `domainflow migrate`"
) -> asyncpg.Connection | Finding:
    try:
        return await asyncpg.connect(url, timeout=TIMEOUT)
    except asyncpg.InvalidCatalogNameError:
        return Finding(check, False, "the database does not exist", create)
    except (OSError, asyncpg.PostgresError, TimeoutError) as failure:
        return Finding(
            check, False, f"cannot connect: {failure}", f"start PostgreSQL or set {variable}"
        )


async def _service_database(service: str) -> Finding:
    """Reachable, and every migration this code ships is applied."""
    check, variable = f"{service}-database", f"DOMAINFLOW_{service.upper()}_DATABASE_URL"
    conn = await _connect(check, database_url(service), variable)
    if isinstance(conn, Finding):
        return conn
    try:
        applied: set[str] = set()
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is not None:
            applied = {
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
            }
    finally:
        await conn.close()
    shipped = [version for version, _ in service_migrations(service)]
    pending = [version for version in shipped if version not in applied]
    if pending:
        return Finding(
            check,
            False,
            f"{len(pending)} migration(s) not applied: {', '.join(pending)}",
            f"run `domainflow migrate {service}` (each service also migrates as it starts)",
        )
    return Finding(check, True, f"reachable, {len(shipped)} migrations applied")


async def _stopped_sagas() -> Finding:
    """Sagas that stopped for an operator: an undo or removal kept failing for a reason no
    wait mends, and the domain is stuck until someone acts."""
    check = "sagas"
    conn = await _connect(check, database_url("provisioner"), "DOMAINFLOW_PROVISIONER_DATABASE_URL")
    if isinstance(conn, Finding):
        return conn
    try:
        if await conn.fetchval("SELECT to_regclass('sagas')") is None:
            return Finding(check, True, "no sagas yet")
        migrated = await conn.fetchval(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_name = 'sagas' AND column_name = 'error_class'"
        )
        if not migrated:
            return Finding(check, True, "no saga can stop yet (run `domainflow migrate`)")
        count, latest = await repository.stopped(conn, limit=10)
    finally:
        await conn.close()
    if not count:
        return Finding(check, True, "no saga waits for an operator")
    listed = "; ".join(
        f"{s.domain} ({s.domain_id}): {s.kind} stopped at {s.step} with {s.error_class}"
        f" ({(s.error or '')[:200]})"
        for s in latest
    )
    return Finding(
        check,
        False,
        f"{count} saga(s) stopped for an operator: {listed}",
        "mend the cause (the provisioner's log has the saga.needs_operator line), then "
        "`domainflow domains release <domain> --reason ...`: it deletes the domain and "
        "starts its removal again",
    )


async def _ses_capacity(settings: ApiSettings) -> Finding:
    """Whether each region domains are placed in still has an SES account with room."""
    check = "ses-capacity"
    conn = await _connect(check, database_url("api"), "DOMAINFLOW_API_DATABASE_URL")
    if isinstance(conn, Finding):
        return conn
    try:
        if await conn.fetchval("SELECT to_regclass('ses_identity_counts')") is None:
            return Finding(check, True, "no domains placed yet (run `domainflow migrate`)")
        rows = await conn.fetch("SELECT account, region, identities FROM ses_identity_counts")
    finally:
        await conn.close()
    ses = settings.ses
    counts = {(r["account"] or ses.default_account, r["region"]): r["identities"] for r in rows}
    accounts = ses.account_list()
    regions = {region for _, region in counts} | {r for a in accounts for r in a.regions}
    free = {
        region: sum(
            max(a.identity_cap - ses.identity_margin - counts.get((a.name, region), 0), 0)
            for a in accounts
            if a.serves(region)
        )
        for region in sorted(regions)
    }
    full = [region for region, room in free.items() if room == 0]
    if full:
        return Finding(
            check,
            False,
            f"no SES account serving {', '.join(full)} has room: creates there answer 503",
            "add an account serving it to DOMAINFLOW_SES_ACCOUNTS (or raise its identity_cap"
            " once AWS raised the account's quota); `domainflow accounts` shows each one",
        )
    listed = ", ".join(f"{region}: {room} free" for region, room in free.items())
    return Finding(check, True, f"room for new domains ({listed or 'no domains yet'})")


async def _mailserver_database(url: str) -> Finding:
    check = "mailserver-database"
    conn = await _connect(
        check,
        url,
        "DOMAINFLOW_MAILSERVER_DATABASE_URL",
        "point DOMAINFLOW_MAILSERVER_DATABASE_URL at the mail platform's database (the "
        "provisioner creates it only with DOMAINFLOW_MAILSERVER_ENSURE_SCHEMA=true)",
    )
    if isinstance(conn, Finding):
        return conn
    try:
        table = await conn.fetchval("SELECT to_regclass('virtual_domains')")
    finally:
        await conn.close()
    if table is None:
        return Finding(
            check,
            False,
            "reachable, but it has no virtual_domains table for Postfix to read",
            "apply deploy/mailserver/schema.sql, or start the provisioner with "
            "DOMAINFLOW_MAILSERVER_ENSURE_SCHEMA=true",
        )
    return Finding(check, True, "reachable, virtual_domains present")


async def _broker(amqp_url: Nodes) -> list[Finding]:
    try:
        connection = await connect_any(amqp_url, per_node=TIMEOUT)
    except (OSError, aio_pika.exceptions.AMQPError, TimeoutError) as failure:
        return [
            Finding(
                "rabbitmq",
                False,
                f"cannot connect: {failure}",
                "start RabbitMQ or set DOMAINFLOW_AMQP_URL (DOMAINFLOW_AMQP_URLS for a cluster)",
            )
        ]
    try:
        channel = await connection.channel()
        try:
            await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        except ChannelNotFoundEntity:
            return [
                Finding(
                    "rabbitmq",
                    False,
                    f"reachable, but the exchange {EVENTS_EXCHANGE} is not declared",
                    "start the services once (`domainflow serve <service>`): each declares "
                    "its queues",
                )
            ]
    finally:
        await connection.close()
    findings = [Finding("rabbitmq", True, f"reachable, {EVENTS_EXCHANGE} declared")]
    try:
        parked = [p for p in await dead_letters.parked(amqp_url) if p.parked]
    except (OSError, aio_pika.exceptions.AMQPError, TimeoutError) as failure:
        # RabbitMQ answered a moment ago: report this check as failed, keep the others.
        findings.append(
            Finding(
                "dead-letters",
                False,
                f"cannot count parked messages: {failure}",
                "check RabbitMQ's log; `rabbitmqctl list_queues name messages` counts by hand",
            )
        )
        return findings
    if parked:
        worst = max(parked, key=lambda p: p.parked or 0)
        findings.append(
            Finding(
                "dead-letters",
                False,
                ", ".join(f"{p.parked} parked in {p.dead_letter_queue}" for p in parked),
                f"read them with `domainflow dead-letters show {worst.queue}`, mend the "
                f"cause, then `domainflow dead-letters replay {worst.queue}`",
            )
        )
    else:
        findings.append(Finding("dead-letters", True, "no parked messages"))
    return findings


async def _ses(settings: NotifierSettings) -> list[Finding]:
    region = settings.notify.region
    address = parseaddr(settings.notify.sender)[1]
    async with AwsClients(
        settings.aws, connect_timeout=TIMEOUT, read_timeout=TIMEOUT, max_attempts=1
    ) as aws:
        try:
            async with aws.ses(region) as ses:
                quota = await ses.get_send_quota()
                identities = [address, address.rpartition("@")[2]] if "@" in address else []
                statuses: dict[str, str | None] = {}
                if identities:
                    answer = await ses.get_identity_verification_attributes(Identities=identities)
                    statuses = {
                        identity: attributes.get("VerificationStatus")
                        for identity, attributes in answer["VerificationAttributes"].items()
                    }
        except Exception as failure:  # any failure of SES or the network is the finding
            error = ses_error(failure)
            said = str(error) if error else f"{type(failure).__name__}: {failure}"
            return [
                Finding(
                    "ses",
                    False,
                    f"SES in {region} refused: {said}",
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and "
                    "AWS_ENDPOINT_URL",
                )
            ]
    findings = [
        Finding(
            "ses",
            True,
            f"SES in {region} answers; {quota.get('Max24HourSend', 0):.0f} sends a day allowed",
        )
    ]
    if not identities:
        findings.append(
            Finding(
                "ses-sender",
                False,
                f"DOMAINFLOW_NOTIFY_FROM {settings.notify.sender!r} has no email address",
                "set DOMAINFLOW_NOTIFY_FROM to an address such as 'Mail <ops@example.com>'",
            )
        )
    elif "Success" in statuses.values():
        proof = next(i for i, s in statuses.items() if s == "Success")
        findings.append(Finding("ses-sender", True, f"{address} may send (verified: {proof})"))
    else:
        findings.append(
            Finding(
                "ses-sender",
                False,
                f"SES has not verified {address} or its domain in {region}: owners' emails "
                "would be refused",
                f"verify {address} (or {identities[1]}) in SES, or set DOMAINFLOW_NOTIFY_FROM",
            )
        )
    return findings


async def _doh(settings: VerifierSettings, probe_name: str) -> Finding:
    async with DohResolver(
        settings.dns.doh_url,
        ca_file=settings.dns.doh_ca_file,
        timeout=min(TIMEOUT, 5.0),
        attempts=1,
    ) as resolver:
        answer = await resolver.lookup(probe_name, "MX")
    if isinstance(answer, Unavailable):
        return Finding(
            "doh",
            False,
            f"{settings.dns.doh_url} gave no answer ({answer.reason}): every check would be "
            "inconclusive and no domain would verify",
            "set DOMAINFLOW_DOH_URL to a DNS-over-HTTPS resolver (RFC 8484), and "
            "DOMAINFLOW_DOH_CA_FILE for a private CA",
        )
    return Finding("doh", True, f"{settings.dns.doh_url} answers")


async def diagnose() -> list[Finding]:
    """Every check, side by side; each bounded by its own timeout."""
    api, provisioner = ApiSettings(), ProvisionerSettings()
    verifier, notifier = VerifierSettings(), NotifierSettings()

    async def bounded(name: str, check: Awaitable[list[Finding]]) -> list[Finding]:
        try:
            return await asyncio.wait_for(check, timeout=TIMEOUT * 3)
        except TimeoutError:
            return [Finding(name, False, "no answer in time", "check the address and firewall")]

    async def one(finding: Awaitable[Finding]) -> list[Finding]:
        return [await finding]

    checks = [
        *(bounded(f"{service}-database", one(_service_database(service))) for service in DATABASES),
        bounded("sagas", one(_stopped_sagas())),
        bounded("ses-capacity", one(_ses_capacity(api))),
        bounded(
            "mailserver-database",
            one(_mailserver_database(provisioner.mailserver.database_url)),
        ),
        bounded("rabbitmq", _broker(api.broker.urls)),
        bounded("ses", _ses(notifier)),
        bounded("doh", one(_doh(verifier, api.records.mx_target))),
    ]
    return [finding for found in await asyncio.gather(*checks) for finding in found]


def adopt_local_stack() -> bool:
    """With `make up` running, check what it runs: its sandboxes' settings fill in what the
    shell does not set (a variable set in the shell still wins)."""
    root = state_dir()
    if not (root / "stack.ready").exists() or not (root / "stack.json").exists():
        return False
    for name, value in json.loads((root / "stack.json").read_text()).items():
        os.environ.setdefault(name, value)
    return True


async def main(as_json: bool) -> int:
    if adopt_local_stack():
        print(f"(the local stack is up: using its settings from {state_dir()})", file=sys.stderr)
    findings = await diagnose()
    if as_json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for f in findings:
            print(f"{'ok  ' if f.ok else 'FAIL'}  {f.check:<21} {f.detail}")
            if f.fix:
                print(f"      {'':<21} fix: {f.fix}")
    failed = [f.check for f in findings if not f.ok]
    if failed:
        print(f"{len(failed)} problem(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
