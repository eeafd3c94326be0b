"""The verifier's tables in SQL: the schedule, claims on due rows, and the check history."""

from __future__ import annotations

import uuid
from datetime import datetime

from domainflow.contracts import (
    DnsRecords,
    DomainStatus,
    DomainStatusChanged,
    VerificationCompleted,
)
from domainflow.kit.database import Connection, Database
from domainflow.verifier.schedule import DueDomain, Placement, ScheduleRow

_SCHEDULED = [DomainStatus.PENDING.value, DomainStatus.VERIFIED.value]


async def lock_domain(conn: Connection, domain_id: str) -> None:
    """Serialise every change to one domain's row, including its first insert."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('schedule:' || $1))", domain_id)


async def load(conn: Connection, domain_id: str) -> ScheduleRow | None:
    row = await conn.fetchrow(
        "SELECT status, next_check_at, status_event_at FROM schedule WHERE domain_id = $1",
        domain_id,
    )
    if row is None:
        return None
    return ScheduleRow(DomainStatus(row["status"]), row["next_check_at"], row["status_event_at"])


async def save_status(conn: Connection, event: DomainStatusChanged, placement: Placement) -> None:
    """Write a status change's placement; a removal clears records and any claim on the row."""
    records = (
        event.records.model_dump(mode="json")
        if placement.keep_records and event.records is not None
        else None
    )
    next_check_at = placement.next_check_at
    await conn.execute(
        """
        INSERT INTO schedule AS s (domain_id, team_id, domain, region, status, records,
                                   next_check_at, correlation_id, status_event_id, status_event_at,
                                   ses_account)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12)
        ON CONFLICT (domain_id) DO UPDATE SET
            team_id = EXCLUDED.team_id,
            domain = EXCLUDED.domain,
            region = EXCLUDED.region,
            -- kept for the domain's life; an event without it (an older writer) keeps it
            ses_account = coalesce(EXCLUDED.ses_account, s.ses_account),
            status = EXCLUDED.status,
            -- an event without records keeps the ones we have, unless the domain is removed
            records = CASE WHEN $11 THEN coalesce(EXCLUDED.records, s.records) ELSE NULL END,
            next_check_at = EXCLUDED.next_check_at,
            claim_token = CASE WHEN $11 THEN s.claim_token END,
            claimed_until = CASE WHEN $11 THEN s.claimed_until END,
            correlation_id = EXCLUDED.correlation_id,
            status_event_id = EXCLUDED.status_event_id,
            status_event_at = EXCLUDED.status_event_at,
            updated_at = now()
        """,
        event.domain_id,
        event.team_id,
        event.domain,
        event.region,
        placement.status.value,
        records,
        next_check_at,
        event.correlation_id,
        event.event_id,
        event.occurred_at,
        placement.keep_records,
        event.ses_account,
    )
    # A domain scheduled without any records to check would only ever come back inconclusive.
    await conn.execute(
        "UPDATE schedule SET next_check_at = NULL WHERE domain_id = $1 AND records IS NULL",
        event.domain_id,
    )


async def remove(
    conn: Connection, domain_id: str, team_id: str, domain: str, event_at: datetime
) -> None:
    """Leave a tombstone: never checked again, and no older event can bring the domain back."""
    await conn.execute(
        """
        INSERT INTO schedule AS s (domain_id, team_id, domain, region, status, records,
                                   next_check_at, correlation_id, status_event_at)
        VALUES ($1, $2, $3, '', 'deleted', NULL, NULL, '', $4)
        ON CONFLICT (domain_id) DO UPDATE SET
            status = 'deleted', records = NULL, next_check_at = NULL,
            claim_token = NULL, claimed_until = NULL,
            status_event_at = greatest(s.status_event_at, EXCLUDED.status_event_at),
            updated_at = now()
        """,
        domain_id,
        team_id,
        domain,
        event_at,
    )


async def note_manual_check(
    conn: Connection,
    domain_id: str,
    region: str,
    records: DnsRecords,
    checked_at: datetime,
    ses_account: str | None = None,
) -> None:
    """A manual verify carries the records as the api knows them now: keep the schedule's fresh."""
    await conn.execute(
        "UPDATE schedule SET records = $2, region = $3, last_checked_at = $4,"
        " ses_account = coalesce($5, ses_account),"
        " updated_at = now() WHERE domain_id = $1 AND status NOT IN ('deleting', 'deleted')",
        domain_id,
        records.model_dump(mode="json"),
        region,
        checked_at,
        ses_account,
    )


async def database_now(db: Database) -> datetime:
    async with db.pool.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


async def due_accounts(db: Database, due_by: datetime) -> list[str]:
    """The SES accounts with rows due by `due_by` ('' for the default account)."""
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT coalesce(ses_account, '') AS account FROM schedule"
            " WHERE next_check_at <= $1 AND records IS NOT NULL",
            due_by,
        )
    return sorted(r["account"] for r in rows)


async def claim_due(
    db: Database,
    *,
    due_by: datetime,
    limit: int,
    lease_seconds: float,
    token: uuid.UUID,
    account: str | None = None,
) -> list[DueDomain]:
    """Claim up to `limit` rows due by `due_by` that nobody holds, or whose lease ran out;
    only SES account `account`'s ('' for the default account) when one is given."""
    async with db.transaction() as conn:
        rows = await conn.fetch(
            """
            WITH due AS (
                SELECT domain_id FROM schedule
                WHERE next_check_at <= $1
                  AND records IS NOT NULL
                  AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
                  AND ($5::text IS NULL OR coalesce(ses_account, '') = $5::text)
                ORDER BY next_check_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE schedule s
            SET claim_token = $3,
                claimed_until = clock_timestamp() + make_interval(secs => $4)
            FROM due WHERE s.domain_id = due.domain_id
            RETURNING s.domain_id, s.team_id, s.domain, s.region, s.records, s.next_check_at,
                      s.ses_account
            """,
            due_by,
            limit,
            token,
            lease_seconds,
            account,
        )
    return [
        DueDomain(
            domain_id=r["domain_id"],
            team_id=r["team_id"],
            domain=r["domain"],
            region=r["region"],
            records=DnsRecords.model_validate(r["records"]),
            due_at=r["next_check_at"],
            ses_account=r["ses_account"],
        )
        for r in rows
    ]


async def finish_claimed(
    conn: Connection,
    domain_id: str,
    token: uuid.UUID,
    next_check_at: datetime,
    checked_at: datetime,
) -> bool:
    """Advance a claimed row and release it; False if the claim was lost (lapsed, removed)."""
    done = await conn.fetchval(
        """
        UPDATE schedule
        SET next_check_at = CASE WHEN status = ANY($5::text[]) THEN $3::timestamptz END,
            last_checked_at = $4, claim_token = NULL, claimed_until = NULL, updated_at = now()
        WHERE domain_id = $1 AND claim_token = $2
        RETURNING true
        """,
        domain_id,
        token,
        next_check_at,
        checked_at,
        _SCHEDULED,
    )
    return bool(done)


async def release_claims(db: Database, domain_ids: list[str], token: uuid.UUID) -> None:
    """Give rows back undone (their probe broke): they stay due for the next tick."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE schedule SET claim_token = NULL, claimed_until = NULL"
            " WHERE domain_id = ANY($1::text[]) AND claim_token = $2",
            domain_ids,
            token,
        )


async def record_check(conn: Connection, event: VerificationCompleted) -> None:
    await conn.execute(
        """
        INSERT INTO check_history (domain_id, domain, trigger, outcome, ses_dkim_status,
                                   checks, event_id, correlation_id, checked_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        event.domain_id,
        event.domain,
        event.trigger.value,
        event.outcome.value,
        event.ses_dkim_status.value if event.ses_dkim_status is not None else None,
        [c.model_dump(mode="json") for c in event.checks],
        event.event_id,
        event.correlation_id,
        event.checked_at,
    )


async def seen(conn: Connection, consumer: str, event_id: uuid.UUID) -> bool:
    """Whether the inbox already holds this event (a cheap look before slow work)."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
        )
    )
