"""SQL for mailboxes, and the domain row lock that keeps them off a domain being deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domainflow.api.domain.errors import NameTaken
from domainflow.kit.database import Connection


@dataclass(frozen=True)
class MailboxRow:
    id: int
    public_id: str
    team_id: int
    address: str
    domain_id: int | None
    domain_public_id: str | None
    created_at: datetime
    deleted_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> MailboxRow:
        return cls(
            id=r["id"],
            public_id=r["public_id"],
            team_id=r["team_id"],
            address=r["address"],
            domain_id=r["domain_id"],
            domain_public_id=r["domain_public_id"],
            created_at=r["created_at"],
            deleted_at=r["deleted_at"],
        )


@dataclass(frozen=True)
class LockedDomain:
    id: int
    public_id: str
    domain: str
    status: str
    mode: str


_MAILBOX_SELECT = """
SELECT m.*, d.public_id AS domain_public_id
FROM mailboxes m LEFT JOIN domains d ON d.id = m.domain_id
"""


class MailboxRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock_team_domain(self, team_id: int, name: str) -> LockedDomain | None:
        """The team's live domain called `name`, locked FOR SHARE until the transaction ends.

        The lock conflicts with the FOR UPDATE that a domain deletion takes before it counts
        mailboxes, so a mailbox insert and a deletion of its domain serialise: whichever locks
        second sees what the first committed (PostgreSQL re-reads a row it waited for).
        Mailbox inserts share the lock with each other and do not queue behind one another.
        """
        r = await self._conn.fetchrow(
            "SELECT id, public_id, domain, status, mode FROM domains"
            " WHERE team_id = $1 AND domain = $2 AND status <> 'deleted' FOR SHARE",
            team_id,
            name,
        )
        return (
            LockedDomain(r["id"], r["public_id"], r["domain"], r["status"], r["mode"])
            if r
            else None
        )

    async def add(
        self, *, public_id: str, team_id: int, domain_id: int | None, address: str
    ) -> MailboxRow:
        try:
            await self._conn.execute(
                "INSERT INTO mailboxes (public_id, team_id, domain_id, address)"
                " VALUES ($1, $2, $3, $4)",
                public_id,
                team_id,
                domain_id,
                address,
            )
        except asyncpg.UniqueViolationError:
            raise NameTaken(address) from None
        row = await self.of_team(team_id, public_id)
        assert row is not None
        return row

    async def holding(self, address: str) -> MailboxRow | None:
        r = await self._conn.fetchrow(
            _MAILBOX_SELECT + " WHERE m.address = $1 AND m.deleted_at IS NULL", address
        )
        return MailboxRow.from_record(r) if r else None

    async def of_team(self, team_id: int, public_id: str) -> MailboxRow | None:
        r = await self._conn.fetchrow(
            _MAILBOX_SELECT + " WHERE m.public_id = $1 AND m.team_id = $2 AND m.deleted_at IS NULL",
            public_id,
            team_id,
        )
        return MailboxRow.from_record(r) if r else None

    async def list_of_team(
        self, team_id: int, *, after_id: int, limit: int, domain_public_id: str | None
    ) -> list[MailboxRow]:
        rows = await self._conn.fetch(
            _MAILBOX_SELECT + " WHERE m.team_id = $1 AND m.deleted_at IS NULL AND m.id > $2"
            " AND ($3::text IS NULL OR d.public_id = $3) ORDER BY m.id LIMIT $4",
            team_id,
            after_id,
            domain_public_id,
            limit,
        )
        return [MailboxRow.from_record(r) for r in rows]

    async def delete(self, team_id: int, public_id: str) -> MailboxRow | None:
        """Mark the team's live mailbox deleted; None if there is none (gone, or not theirs)."""
        updated = await self._conn.fetchval(
            "UPDATE mailboxes SET deleted_at = now()"
            " WHERE public_id = $1 AND team_id = $2 AND deleted_at IS NULL RETURNING id",
            public_id,
            team_id,
        )
        if updated is None:
            return None
        r = await self._conn.fetchrow(_MAILBOX_SELECT + " WHERE m.id = $1", updated)
        return MailboxRow.from_record(r) if r else None
