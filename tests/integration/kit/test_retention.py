"""Tables that grow with every event are trimmed by age, and only what has aged out goes.

Over real PostgreSQL, with the verifier's schema (the inbox every service has, plus the
verifier's probe records and tombstones) and the notifier's log of owner emails.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from domainflow.kit.database import Database
from domainflow.kit.retention import inbox_trim, keep_trimmed, trim
from domainflow.kit.runtime import kit_migrations
from domainflow.notifier import main as notifier
from domainflow.notifier.settings import NotifierRetentionSettings, NotifierSettings
from domainflow.verifier.main import migrations, retention
from domainflow.verifier.settings import VerifierRetentionSettings, VerifierSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    url = await database_url("retention")
    database = await Database.prepare(url, [*kit_migrations(), *migrations()], size=2)
    try:
        yield database
    finally:
        await database.close()


async def _processed(db: Database, days_ago: float, n: int = 1) -> None:
    async with db.pool.acquire() as conn:
        for _ in range(n):
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, event_type, processed_at)"
                " VALUES ('api', $1, 'domain.provisioned', now() - make_interval(days => $2))",
                uuid.uuid4(),
                days_ago,
            )


async def _count(db: Database, sql: str) -> int:
    async with db.pool.acquire() as conn:
        return int(await conn.fetchval(sql))


async def test_the_inbox_keeps_only_its_retention_in_batches(db: Database) -> None:
    await _processed(db, days_ago=8, n=5)
    await _processed(db, days_ago=6, n=2)
    assert await trim(db, inbox_trim(timedelta(days=7)), batch=2) == 5  # three rounds
    assert await _count(db, "SELECT count(*) FROM inbox") == 2
    assert await trim(db, inbox_trim(timedelta(days=7))) == 0


async def test_probe_records_and_tombstones_age_out_but_live_domains_stay(db: Database) -> None:
    async with db.pool.acquire() as conn:
        for days_ago in (100, 10):
            await conn.execute(
                "INSERT INTO check_history (domain_id, domain, trigger, outcome, checks,"
                " event_id, correlation_id, checked_at) VALUES ($1, 'x.example', 'scheduled',"
                " 'passed', '[]', $2, 'cycle', now() - make_interval(days => $3))",
                f"dom_{days_ago}",
                uuid.uuid4(),
                days_ago,
            )
        rows = [("old_tombstone", "deleted", 100), ("new_tombstone", "deleted", 10)]
        rows.append(("quiet_live_domain", "verified", 100))  # long unchanged, still scheduled
        for domain_id, status, days_ago in rows:
            await conn.execute(
                "INSERT INTO schedule (domain_id, team_id, domain, region, status,"
                " correlation_id, status_event_at, updated_at)"
                " VALUES ($1, 'team', 'x.example', 'us-east-1', $2, 'req', now(),"
                " now() - make_interval(days => $3))",
                domain_id,
                status,
                days_ago,
            )
    rules = retention(VerifierSettings(retention=VerifierRetentionSettings(check_history_days=90)))
    assert [await trim(db, rule) for rule in rules] == [1, 1]
    assert await _count(db, "SELECT count(*) FROM check_history") == 1
    async with db.pool.acquire() as conn:
        left = {r["domain_id"] for r in await conn.fetch("SELECT domain_id FROM schedule")}
    assert left == {"new_tombstone", "quiet_live_domain"}


async def test_the_loop_keeps_trimming_until_cancelled(db: Database) -> None:
    loop = asyncio.create_task(keep_trimmed(db, [inbox_trim(timedelta(days=7))], every=0.05))
    try:
        await _processed(db, days_ago=30, n=3)
        await _processed(db, days_ago=1)
        for _ in range(200):  # the loop runs every 0.05 s: ten seconds at the most
            if await _count(db, "SELECT count(*) FROM inbox") == 1:
                break
            await asyncio.sleep(0.05)
        assert await _count(db, "SELECT count(*) FROM inbox") == 1
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_settled_mails_age_out_but_a_mail_of_unknown_fate_stays(
    database_url: Callable[[str], Awaitable[str]],
) -> None:
    url = await database_url("retention_notifier")
    db = await Database.prepare(url, [*kit_migrations(), *notifier.migrations()], size=1)
    try:
        async with db.pool.acquire() as conn:
            for state, days_ago in [
                ("sent", 400),
                ("rejected", 400),
                ("unconfirmed", 400),
                ("sending", 400),
                ("sent", 30),
            ]:
                await conn.execute(
                    "INSERT INTO notifications (transition_event_id, recipient, domain_id,"
                    " domain, new_status, state, message_id, updated_at) VALUES ($1,"
                    " 'owner@x.example', 'dom', 'x.example', 'failed', $2, $3,"
                    " now() - make_interval(days => $4))",
                    uuid.uuid4(),
                    state,
                    "ses-id" if state == "sent" else None,
                    days_ago,
                )
        rules = notifier.retention(
            NotifierSettings(retention=NotifierRetentionSettings(notification_days=365))
        )
        assert [await trim(db, rule) for rule in rules] == [2]
        async with db.pool.acquire() as conn:
            left = sorted(r["state"] for r in await conn.fetch("SELECT state FROM notifications"))
        assert left == ["sending", "sent", "unconfirmed"]
    finally:
        await db.close()
