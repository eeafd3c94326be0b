"""SQL for the api's own database: teams, members, API keys and domains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domainflow.kit.database import Connection


@dataclass(frozen=True)
class Team:
    id: int
    public_id: str
    name: str


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    team_id: int
    team_public_id: str
    role: str
    permissions: tuple[str, ...]
    revoked: bool


@dataclass(frozen=True)
class DomainRow:
    id: int
    public_id: str
    team_id: int
    team_public_id: str
    domain: str
    status: str
    consecutive_failures: int
    degraded: bool
    region: str
    external_id: str | None
    metadata: dict[str, Any]
    mail_from_domain: str | None
    dkim_tokens: tuple[str, ...]
    ses_dkim_status: str
    last_checks: list[dict[str, Any]] | None
    last_outcome: str | None
    failure_reason: str | None
    verified_at: datetime | None
    last_checked_at: datetime | None
    verify_requested_at: datetime | None
    created_at: datetime
    updated_at: datetime
    request_id: str

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> DomainRow:
        return cls(
            id=r["id"],
            public_id=r["public_id"],
            team_id=r["team_id"],
            team_public_id=r["team_public_id"],
            domain=r["domain"],
            status=r["status"],
            consecutive_failures=r["consecutive_failures"],
            degraded=r["degraded"],
            region=r["region"],
            external_id=r["external_id"],
            metadata=r["metadata"] or {},
            mail_from_domain=r["mail_from_domain"],
            dkim_tokens=tuple(r["dkim_tokens"] or ()),
            ses_dkim_status=r["ses_dkim_status"],
            last_checks=r["last_checks"],
            last_outcome=r["last_outcome"],
            failure_reason=r["failure_reason"],
            verified_at=r["verified_at"],
            last_checked_at=r["last_checked_at"],
            verify_requested_at=r["verify_requested_at"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            request_id=r["request_id"],
        )


_DOMAIN_SELECT = """
SELECT d.*, t.public_id AS team_public_id
FROM domains d JOIN teams t ON t.id = d.team_id
"""


# --- teams, members, keys -------------------------------------------------------------


async def team_by_name(conn: Connection, name: str) -> Team | None:
    r = await conn.fetchrow("SELECT id, public_id, name FROM teams WHERE name = $1", name)
    return Team(r["id"], r["public_id"], r["name"]) if r else None


async def insert_team(conn: Connection, public_id: str, name: str) -> Team:
    r = await conn.fetchrow(
        "INSERT INTO teams (public_id, name) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
        " RETURNING id, public_id, name",
        public_id,
        name,
    )
    assert r is not None
    return Team(r["id"], r["public_id"], r["name"])


async def upsert_member(conn: Connection, team_id: int, email: str, role: str) -> None:
    await conn.execute(
        "INSERT INTO members (team_id, email, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (team_id, email) DO UPDATE SET role = EXCLUDED.role",
        team_id,
        email,
        role,
    )


async def owner_emails(conn: Connection, team_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT email FROM members WHERE team_id = $1 AND role = 'owner' ORDER BY email", team_id
    )
    return [r["email"] for r in rows]


async def insert_key(
    conn: Connection,
    team_id: int,
    key_id: str,
    key_hash: str,
    role: str,
    permissions: list[str],
) -> None:
    await conn.execute(
        "INSERT INTO api_keys (team_id, key_id, key_hash, role, permissions)"
        " VALUES ($1, $2, $3, $4, $5)",
        team_id,
        key_id,
        key_hash,
        role,
        permissions,
    )


async def key_by_hash(conn: Connection, key_hash: str) -> KeyRecord | None:
    r = await conn.fetchrow(
        "SELECT k.key_id, k.team_id, t.public_id AS team_public_id, k.role, k.permissions,"
        " k.revoked_at IS NOT NULL AS revoked"
        " FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.key_hash = $1",
        key_hash,
    )
    if r is None:
        return None
    return KeyRecord(
        r["key_id"],
        r["team_id"],
        r["team_public_id"],
        r["role"],
        tuple(r["permissions"]),
        r["revoked"],
    )


async def list_keys(conn: Connection, team_name: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT k.key_id, t.name AS team, k.role, k.created_at, k.last_used_at, k.revoked_at"
        " FROM api_keys k JOIN teams t ON t.id = k.team_id"
        " WHERE $1::text IS NULL OR t.name = $1 ORDER BY k.id",
        team_name,
    )


async def revoke_key(conn: Connection, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


# --- domains -----------------------------------------------------------------------------


async def active_domain_by_name(conn: Connection, domain: str) -> DomainRow | None:
    r = await conn.fetchrow(
        _DOMAIN_SELECT + " WHERE d.domain = $1 AND d.status <> 'deleted'", domain
    )
    return DomainRow.from_record(r) if r else None


async def insert_domain(
    conn: Connection,
    *,
    public_id: str,
    team_id: int,
    domain: str,
    region: str,
    external_id: str | None,
    metadata: dict[str, Any],
    mail_from_domain: str | None,
    request_id: str,
) -> DomainRow:
    await conn.execute(
        "INSERT INTO domains (public_id, team_id, domain, status, region, external_id, metadata,"
        " mail_from_domain, request_id) VALUES ($1, $2, $3, 'provisioning', $4, $5, $6, $7, $8)",
        public_id,
        team_id,
        domain,
        region,
        external_id,
        metadata,
        mail_from_domain,
        request_id,
    )
    row = await domain_by_public_id(conn, public_id, include_deleted=True)
    assert row is not None
    return row


async def domain_by_public_id(
    conn: Connection, public_id: str, *, for_update: bool = False, include_deleted: bool = False
) -> DomainRow | None:
    sql = _DOMAIN_SELECT + " WHERE d.public_id = $1"
    if not include_deleted:
        sql += " AND d.status <> 'deleted'"
    if for_update:
        sql += " FOR UPDATE OF d"
    r = await conn.fetchrow(sql, public_id)
    return DomainRow.from_record(r) if r else None


async def team_domain(conn: Connection, team_id: int, public_id: str) -> DomainRow | None:
    r = await conn.fetchrow(
        _DOMAIN_SELECT + " WHERE d.public_id = $1 AND d.team_id = $2 AND d.status <> 'deleted'",
        public_id,
        team_id,
    )
    return DomainRow.from_record(r) if r else None


async def list_team_domains(
    conn: Connection, team_id: int, *, after_id: int, limit: int, statuses: list[str] | None
) -> list[DomainRow]:
    rows = await conn.fetch(
        _DOMAIN_SELECT + " WHERE d.team_id = $1 AND d.status <> 'deleted' AND d.id > $2"
        " AND ($3::text[] IS NULL OR d.status = ANY($3::text[])) ORDER BY d.id LIMIT $4",
        team_id,
        after_id,
        statuses,
        limit,
    )
    return [DomainRow.from_record(r) for r in rows]


async def update_domain(conn: Connection, public_id: str, **fields: Any) -> None:
    """Set the named columns (names are code, never input) and touch `updated_at`."""
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE domains SET {assignments}, updated_at = now() WHERE public_id = $1",
        public_id,
        *fields.values(),
    )


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    at: datetime
    happening: str
    status_before: str | None
    status_after: str
    reason: str
    outcome: str | None
    ses_dkim_status: str | None
    checks: list[dict[str, Any]] | None
    request_id: str


async def note_on_timeline(
    conn: Connection,
    domain_pk: int,
    *,
    happening: str,
    status_before: str | None,
    status_after: str,
    reason: str,
    request_id: str,
    outcome: str | None = None,
    ses_dkim_status: str | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO domain_timeline (domain_id, happening, status_before, status_after,"
        " reason, outcome, ses_dkim_status, checks, request_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        domain_pk,
        happening,
        status_before,
        status_after,
        reason,
        outcome,
        ses_dkim_status,
        checks,
        request_id,
    )


async def timeline(
    conn: Connection, domain_pk: int, *, before_id: int | None, limit: int
) -> list[TimelineEntry]:
    """Newest first; `before_id` continues a previous page."""
    rows = await conn.fetch(
        "SELECT id, at, happening, status_before, status_after, reason, outcome,"
        " ses_dkim_status, checks, request_id FROM domain_timeline"
        " WHERE domain_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        domain_pk,
        before_id,
        limit,
    )
    return [TimelineEntry(**dict(r)) for r in rows]
