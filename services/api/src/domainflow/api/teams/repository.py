"""SQL for teams: their members, their API keys and their budget of domain writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domainflow.api.domain.throttle import Decision, admit
from domainflow.kit.database import Connection


@dataclass(frozen=True)
class Team:
    pk: int
    public_id: str
    name: str


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    team_pk: int
    team_public_id: str
    role: str
    permissions: tuple[str, ...]
    revoked: bool


@dataclass(frozen=True)
class KeyListing:
    key_id: str
    team: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TeamRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def named(self, name: str) -> Team | None:
        r = await self._conn.fetchrow("SELECT id, public_id, name FROM teams WHERE name = $1", name)
        return Team(r["id"], r["public_id"], r["name"]) if r else None

    async def by_pk(self, pk: int) -> Team | None:
        r = await self._conn.fetchrow("SELECT id, public_id, name FROM teams WHERE id = $1", pk)
        return Team(r["id"], r["public_id"], r["name"]) if r else None

    async def add(self, public_id: str, name: str) -> Team:
        r = await self._conn.fetchrow(
            "INSERT INTO teams (public_id, name) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
            " RETURNING id, public_id, name",
            public_id,
            name,
        )
        assert r is not None
        return Team(r["id"], r["public_id"], r["name"])

    async def set_member(self, team: Team, email: str, role: str) -> None:
        await self._conn.execute(
            "INSERT INTO members (team_id, email, role) VALUES ($1, $2, $3)"
            " ON CONFLICT (team_id, email) DO UPDATE SET role = EXCLUDED.role",
            team.pk,
            email,
            role,
        )

    async def owner_emails(self, team_pk: int) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT email FROM members WHERE team_id = $1 AND role = 'owner' ORDER BY email",
            team_pk,
        )
        return [r["email"] for r in rows]

    # --- keys ------------------------------------------------------------------------------------

    async def add_key(
        self, team: Team, key_id: str, key_hash: str, role: str, permissions: list[str]
    ) -> None:
        await self._conn.execute(
            "INSERT INTO api_keys (team_id, key_id, key_hash, role, permissions)"
            " VALUES ($1, $2, $3, $4, $5)",
            team.pk,
            key_id,
            key_hash,
            role,
            permissions,
        )

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        r = await self._conn.fetchrow(
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

    async def keys(self, team_name: str | None) -> list[KeyListing]:
        rows = await self._conn.fetch(
            "SELECT k.key_id, t.name AS team, k.role, k.created_at, k.last_used_at, k.revoked_at"
            " FROM api_keys k JOIN teams t ON t.id = k.team_id"
            " WHERE $1::text IS NULL OR t.name = $1 ORDER BY k.id",
            team_name,
        )
        return [KeyListing(**dict(r)) for r in rows]

    async def revoke_key(self, key_id: str, channel: str) -> str | None:
        """Revoke the key; every api replica hears of it on `channel`. Returns its hash."""
        key_hash: str | None = await self._conn.fetchval(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL"
            " RETURNING key_hash",
            key_id,
        )
        if key_hash is not None:
            await self._conn.execute("SELECT pg_notify($1, $2)", channel, key_hash)
        return key_hash

    async def touch_keys(self, key_ids: list[str]) -> None:
        """Note that the keys were used now (the caller writes at most once a minute a key)."""
        await self._conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = ANY($1::text[])", key_ids
        )

    # --- the budget of domain writes -----------------------------------------------------------

    async def spend(self, team_pk: int, bucket: str, *, rate: float, burst: int) -> Decision:
        """Take one request from the team's budget, under the budget row's lock, on the
        database's clock, so replicas on skewed hosts still share one budget."""
        await self._conn.execute(
            # A team's first request starts its budget full: arrival time now.
            "INSERT INTO team_throttle (team_id, bucket, tat)"
            " VALUES ($1, $2, clock_timestamp()) ON CONFLICT DO NOTHING",
            team_pk,
            bucket,
        )
        row = await self._conn.fetchrow(
            "SELECT extract(epoch FROM tat)::float8 AS tat,"
            " extract(epoch FROM clock_timestamp())::float8 AS now"
            " FROM team_throttle WHERE team_id = $1 AND bucket = $2 FOR UPDATE",
            team_pk,
            bucket,
        )
        assert row is not None  # inserted above or there already
        decision = admit(row["tat"], row["now"], rate=rate, burst=burst)
        if decision.admitted:
            await self._conn.execute(
                "UPDATE team_throttle SET tat = to_timestamp($3)"
                " WHERE team_id = $1 AND bucket = $2",
                team_pk,
                bucket,
                decision.tat,
            )
        return decision
