"""The re-verification cycle against the real DoH sandbox, moto's SES and a fresh database.

In-process, on a clock the test moves (no waiting for the cadence): each scheduled domain is
re-checked once per interval, on its beat, and failed or deleted domains not at all; a lapsed
claim is a lease moved into the past, not one waited out. As processes: two replicas on one
database check each domain exactly once per cycle, and when one is killed mid-cycle the
other finishes the cycle.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pytest

from domainflow.contracts import VerificationTrigger
from domainflow.kit.database import Database
from domainflow.kit.envelope import decode
from domainflow.kit.runtime import kit_migrations
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.ports import listening_port
from domainflow.verifier.adapters import repository
from domainflow.verifier.cycle import ReverifyCycle
from domainflow.verifier.main import migrations, open_verifier
from domainflow.verifier.settings import (
    DnsSettings,
    ReverifySettings,
    VerifierDatabaseSettings,
    VerifierSesSettings,
    VerifierSettings,
)
from tests.plugins.dns import SandboxZones, make_records
from tests.plugins.ses import MotoAccounts

pytestmark = pytest.mark.integration

REGION = "us-east-1"


async def create_identities(domains: list[str], region: str = REGION) -> None:
    """Moto's SES answers DKIM `Success` for every identity it holds."""
    async with aioboto3.Session().client("ses", region_name=region) as ses:
        for domain in domains:
            await ses.verify_domain_identity(Domain=domain)


async def schedule(
    db: Database,
    zones: SandboxZones,
    count: int,
    *,
    status: str = "verified",
    due_in: float = 0.0,
) -> list[str]:
    """`count` domains with every record placed, scheduled as the api's events would."""
    ids: list[str] = []
    domains: list[str] = []
    async with db.transaction() as conn:
        for _ in range(count):
            domain = zones.new_domain()
            records = make_records(domain)
            zones.place(records)
            domain_id = f"mdom_{uuid.uuid4().hex[:12]}"
            await conn.execute(
                """
                INSERT INTO schedule (domain_id, team_id, domain, region, status, records,
                                      next_check_at, correlation_id, status_event_at)
                VALUES ($1, 'team_abc123', $2, $3, $4, $5,
                        CASE WHEN $4 IN ('pending', 'verified')
                             THEN now() + make_interval(secs => $6) END,
                        'req_test', now())
                """,
                domain_id,
                domain,
                REGION,
                status,
                records.model_dump(mode="json"),
                due_in,
            )
            ids.append(domain_id)
            domains.append(domain)
    await create_identities(domains)
    return ids


async def history(db: Database) -> dict[str, list[Any]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT domain_id, checked_at, outcome, trigger, correlation_id"
            " FROM check_history ORDER BY checked_at"
        )
    found: dict[str, list[Any]] = {}
    for row in rows:
        found.setdefault(row["domain_id"], []).append(row)
    return found


@pytest.fixture
async def scratch(
    database_url: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[str, Database]]:
    """A fresh, migrated verifier database: its URL (for replicas) and a pool (for the test)."""
    url = await database_url("verifier_cycle")
    db = await Database.prepare(url, [*kit_migrations(), *migrations()], size=10)
    try:
        yield url, db
    finally:
        await db.close()


@pytest.fixture
def fresh_db(scratch: tuple[str, Database]) -> Database:
    return scratch[1]


def settings_for(
    db_url: str, sandbox: DnsSandbox, *, reverify: ReverifySettings | None = None
) -> VerifierSettings:
    return VerifierSettings(
        database=VerifierDatabaseSettings(url=db_url),
        dns=DnsSettings(doh_url=sandbox.doh_url, doh_ca_file=str(sandbox.ca_file), doh_timeout=2.0),
        ses=VerifierSesSettings(rate=20.0),
        reverify=reverify or ReverifySettings(),
    )


class SteppedClock:
    """The cycle's clock, moved only by the test. Every pass reads it once, at its start, so
    its reads count passes: two reads after a move mean a whole pass saw the new time."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._reads = 0
        self._read = asyncio.Condition()

    async def __call__(self) -> datetime:
        async with self._read:
            self._reads += 1
            self._read.notify_all()
        return self.now

    async def move_to(self, now: datetime, *, then_passes: int) -> None:
        """Set the time, then wait until `then_passes` whole passes have run on it."""
        self.now = now
        async with self._read:
            target = self._reads + then_passes + 1  # the last read starts a pass after them
            await asyncio.wait_for(self._read.wait_for(lambda: self._reads >= target), 60)


async def _next_due(db: Database) -> dict[str, datetime]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT domain_id, next_check_at FROM schedule")
    return {row["domain_id"]: row["next_check_at"] for row in rows}


async def test_each_scheduled_domain_is_rechecked_once_per_interval(
    fresh_db: Database, dns_sandbox: DnsSandbox, dns_zones: SandboxZones, moto_server: Any
) -> None:
    # The real six-hour cadence: the test moves the cycle's clock instead of waiting for it.
    interval = timedelta(hours=6)
    settings = settings_for("unused", dns_sandbox, reverify=ReverifySettings(batch=4))
    scheduled = await schedule(fresh_db, dns_zones, 6)
    failed = await schedule(fresh_db, dns_zones, 1, status="failed")
    deleted = await schedule(fresh_db, dns_zones, 1, status="deleted")
    start = await repository.database_now(fresh_db)
    async with fresh_db.pool.acquire() as conn:  # all due at the start, none earlier
        await conn.execute(
            "UPDATE schedule SET next_check_at = $1 WHERE next_check_at IS NOT NULL", start
        )
    clock = SteppedClock(start - timedelta(seconds=1))

    async with open_verifier(fresh_db, settings) as verifier:
        cycle = ReverifyCycle(
            fresh_db, verifier.probe, interval=interval, tick=0.05, batch=4, lease=60, clock=clock
        )
        task = asyncio.create_task(cycle.run())
        try:
            await clock.move_to(clock.now, then_passes=2)
            assert await history(fresh_db) == {}  # a second early: nothing is due yet
            for beat in range(4):  # due at the start, then at +6 h, +12 h, +18 h
                # Each beat, a pass on the new time and two more after it on the same time.
                await clock.move_to(start + beat * interval, then_passes=3)
                found = await history(fresh_db)
                # Once per interval: never a double check, never a skipped interval.
                assert {d: len(c) for d, c in found.items()} == dict.fromkeys(scheduled, beat + 1)
                # On the beat: due again one interval after it was due, however late it ran.
                due = await _next_due(fresh_db)
                assert {d: due[d] for d in scheduled} == dict.fromkeys(
                    scheduled, start + (beat + 1) * interval
                )
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    found = await history(fresh_db)
    assert set(found) == set(scheduled)  # failed and deleted domains are never re-checked
    assert not set(found) & {*failed, *deleted}
    for checks in found.values():
        assert {c["outcome"] for c in checks} == {"passed"}
        assert {c["trigger"] for c in checks} == {"scheduled"}

    # Each check committed its VerificationCompleted with it, through the outbox.
    async with fresh_db.pool.acquire() as conn:
        bodies = await conn.fetch("SELECT body FROM outbox")
    events = [decode(row["body"]) for row in bodies]
    assert len(events) == sum(len(v) for v in found.values())
    assert {getattr(e, "trigger", None) for e in events} == {VerificationTrigger.SCHEDULED}
    # Each carries what SES said of the identity, read batched with the DKIM status.
    identities = [getattr(e, "ses_identity", None) for e in events]
    assert all(i is not None and i.verification_status == "success" for i in identities)
    async with fresh_db.pool.acquire() as conn:
        held = await conn.fetch("SELECT claim_token FROM schedule")
    assert all(row["claim_token"] is None for row in held)


async def test_a_domain_whose_claim_lapsed_is_committed_only_by_its_new_holder(
    fresh_db: Database, dns_sandbox: DnsSandbox, dns_zones: SandboxZones, moto_server: Any
) -> None:
    [domain_id] = await schedule(fresh_db, dns_zones, 1)
    due_by = await repository.database_now(fresh_db)
    first, second = uuid.uuid4(), uuid.uuid4()
    [claimed] = await repository.claim_due(
        fresh_db, due_by=due_by, limit=10, lease_seconds=60, token=first
    )
    assert claimed.domain_id == domain_id
    assert not await repository.claim_due(
        fresh_db, due_by=due_by, limit=10, lease_seconds=60, token=second
    )  # held
    async with fresh_db.pool.acquire() as conn:  # the lease runs out: moved, not waited for
        await conn.execute(
            "UPDATE schedule SET claimed_until = clock_timestamp() - interval '1 second'"
            " WHERE claim_token = $1",
            first,
        )
    assert await repository.claim_due(
        fresh_db, due_by=due_by, limit=10, lease_seconds=60, token=second
    )  # lapsed: taken over
    next_at = claimed.due_at + timedelta(hours=6)
    async with fresh_db.transaction() as conn:
        assert not await repository.finish_claimed(conn, domain_id, first, next_at, next_at)
        assert await repository.finish_claimed(conn, domain_id, second, next_at, next_at)


# -- replicas as processes ----------------------------------------------------------------


@pytest.fixture
def spawn_replica(
    amqp_vhost: Callable[[str], str], dns_sandbox: DnsSandbox, moto_server: Any, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    # A vhost of the test's own: the session's holds events other tests published and nobody
    # consumed (status changes of their domains), which these replicas would schedule too.
    amqp_url = amqp_vhost("cycle")

    def spawn(db_url: str, health_port: int, **env: str) -> subprocess.Popen[bytes]:
        environ = {
            **os.environ,
            "DOMAINFLOW_AMQP_URL": amqp_url,
            "DOMAINFLOW_VERIFIER_DATABASE_URL": db_url,
            "DOMAINFLOW_VERIFIER_HEALTH_PORT": str(health_port),
            "DOMAINFLOW_DOH_URL": dns_sandbox.doh_url,
            "DOMAINFLOW_DOH_CA_FILE": str(dns_sandbox.ca_file),
            "DOMAINFLOW_LOG_LEVEL": "WARNING",
            **env,
        }
        with (tmp_path / f"replica-{len(started)}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", "from domainflow.verifier.main import run; run()"],
                env=environ,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    for _ in range(int(within / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not so within {within} s")


async def _checked(db: Database) -> int:
    async with db.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM check_history"))


async def _settled(db: Database, count: int) -> bool:
    """`count` checks recorded and no claim held: no check is still in flight anywhere."""
    async with db.pool.acquire() as conn:
        held = await conn.fetchval("SELECT count(*) FROM schedule WHERE claim_token IS NOT NULL")
    return held == 0 and await _checked(db) >= count


async def _ready(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as answer,
        ):
            return answer.status == 200
    except aiohttp.ClientError:
        return False


def _checks_logged(log: Path) -> int:
    """How many re-checks a replica says it committed (its `reverify.cycle_done` lines)."""
    done = 0
    for line in log.read_text().splitlines():
        if '"reverify.cycle_done"' in line:
            done += int(json.loads(line)["checked"])
    return done


REPLICA_ENV = {
    "DOMAINFLOW_REVERIFY_INTERVAL": "3600",
    "DOMAINFLOW_REVERIFY_TICK": "0.3",
    "DOMAINFLOW_REVERIFY_BATCH": "5",
    "DOMAINFLOW_REVERIFY_LEASE": "3",
    "DOMAINFLOW_LOG_LEVEL": "INFO",  # each replica's passes, for the test to count
}


async def test_two_replicas_check_each_domain_exactly_once_per_cycle(
    scratch: tuple[str, Database],
    dns_zones: SandboxZones,
    spawn_replica: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    url, fresh_db = scratch
    ports = [listening_port(), listening_port()]
    # The shared SES budget (2 calls a second for 8 batches) keeps the work going for
    # seconds, while each replica ticks every 0.3 s: both get their share.
    # Leases long enough that no claim outlives its lease on a busy host: a claim that did
    # would be taken over and checked twice, as it should be (the next test shows it).
    env = {**REPLICA_ENV, "DOMAINFLOW_REVERIFY_LEASE": "120"}
    replicas = [spawn_replica(url, port, DOMAINFLOW_SES_RATE="2", **env) for port in ports]
    for port in ports:  # both up and ticking before anything falls due
        await _until(functools.partial(_ready, port), within=60)
    assert all(r.poll() is None for r in replicas)
    ids = await schedule(fresh_db, dns_zones, 40)

    await _until(lambda: _settled(fresh_db, len(ids)), within=90)

    found = await history(fresh_db)
    assert sorted(found) == sorted(ids)
    assert all(len(checks) == 1 for checks in found.values())
    shares = [_checks_logged(tmp_path / f"replica-{n}.log") for n in range(2)]
    assert sum(shares) == len(ids)  # what each replica says it did adds up to the history
    assert all(share > 0 for share in shares), shares  # and both took part


async def test_a_replica_killed_mid_cycle_is_finished_by_the_other(
    scratch: tuple[str, Database],
    dns_zones: SandboxZones,
    spawn_replica: Callable[..., subprocess.Popen[bytes]],
) -> None:
    url, fresh_db = scratch
    ids = await schedule(fresh_db, dns_zones, 40, due_in=2.0)
    doomed = spawn_replica(url, listening_port(), DOMAINFLOW_SES_RATE="2", **REPLICA_ENV)
    await _until(lambda: _has(fresh_db, 8), within=60)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    async with fresh_db.pool.acquire() as conn:
        orphaned = await conn.fetchval(
            "SELECT count(*) FROM schedule WHERE claim_token IS NOT NULL"
        )
    done_before = await _checked(fresh_db)
    assert orphaned > 0  # killed holding claims: those must come back when the lease lapses
    assert done_before < len(ids)

    spawn_replica(url, listening_port(), DOMAINFLOW_SES_RATE="20", **REPLICA_ENV)
    await _until(lambda: _settled(fresh_db, len(ids)), within=90)

    found = await history(fresh_db)
    assert sorted(found) == sorted(ids)
    assert all(len(checks) == 1 for checks in found.values())  # resumed, not restarted


async def _has(db: Database, count: int) -> bool:
    return await _checked(db) >= count


async def test_each_domain_is_read_in_its_own_ses_account(
    fresh_db: Database,
    dns_sandbox: DnsSandbox,
    dns_zones: SandboxZones,
    moto_accounts: MotoAccounts,
) -> None:
    # Each identity exists in its domain's account only: a read sent to any other account
    # (the default one included) finds nothing there, and the domain fails.
    names = list(moto_accounts.keys)
    ids: dict[str, str] = {}
    async with fresh_db.transaction() as conn:
        for n in range(6):
            account = names[n % 3]
            domain = dns_zones.new_domain()
            records = make_records(domain)
            dns_zones.place(records)
            ids[domain] = f"mdom_{uuid.uuid4().hex[:12]}"
            await conn.execute(
                """
                INSERT INTO schedule (domain_id, team_id, domain, region, status, records,
                                      next_check_at, correlation_id, status_event_at, ses_account)
                VALUES ($1, 'team_abc123', $2, $3, 'verified', $4, now(), 'req_test', now(), $5)
                """,
                ids[domain],
                domain,
                REGION,
                records.model_dump(mode="json"),
                account,
            )
            key, secret = moto_accounts.keys[account]
            async with aioboto3.Session(aws_access_key_id=key, aws_secret_access_key=secret).client(
                "ses", region_name=REGION
            ) as ses:
                await ses.verify_domain_identity(Domain=domain)
    settings = settings_for("unused", dns_sandbox).model_copy(
        update={
            "ses": VerifierSesSettings(rate=20.0, accounts=moto_accounts.entries()),
        }
    )
    async with open_verifier(fresh_db, settings) as verifier:
        cycle = ReverifyCycle(
            fresh_db, verifier.probe, interval=timedelta(hours=6), tick=0.05, batch=10, lease=60
        )
        report = await cycle.run_once()
        assert report.checked == 6
        found = await history(fresh_db)
        outcomes = {d: tuple(c["outcome"] for c in found[i]) for d, i in ids.items()}
        assert outcomes == dict.fromkeys(ids, ("passed",))
        # A manual verify reads the domain's own account too, and fails where it is not.
        domain = next(iter(ids))
        records = make_records(domain)
        in_alpha = await verifier.probe.check(domain, REGION, records, account="alpha")
        in_beta = await verifier.probe.check(domain, REGION, records, account="beta")
    assert (in_alpha.ses_dkim_status, in_beta.ses_dkim_status) == ("success", "not_started")
