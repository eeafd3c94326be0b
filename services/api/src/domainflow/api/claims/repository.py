"""Claims in PostgreSQL: the `domain_claims` table, over the unit of work's connection."""

from __future__ import annotations

from typing import Final

import asyncpg

from domainflow.api.domain.claims import Claim, ClaimVerdict
from domainflow.api.domain.errors import NameTaken
from domainflow.kit.database import Connection

_SELECT: Final = (
    "SELECT c.*, t.public_id AS team_public_id FROM domain_claims c"
    " JOIN teams t ON t.id = c.team_id"
)


def _claim(r: asyncpg.Record) -> Claim:
    return Claim(
        pk=r["id"],
        public_id=r["public_id"],
        team_pk=r["team_id"],
        team_public_id=r["team_public_id"],
        name=r["domain"],
        holder_domain_id=r["holder_domain_id"],
        request=r["request"],
        request_id=r["request_id"],
        check_event_id=r["check_event_id"],
        verdict=ClaimVerdict(r["verdict"]) if r["verdict"] else None,
        reason=r["reason"],
        claimant_check=r["claimant_check"],
        active_mailboxes=r["active_mailboxes"],
        released_domain_id=r["released_domain_id"],
        domain_public_id=r["domain_public_id"],
        idempotency_key=r["idempotency_key"],
        request_hash=r["request_hash"],
        created_at=r["created_at"],
    )


class ClaimRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, claim: Claim) -> None:
        """Insert a claim; `NameTaken` when the team used its Idempotency-Key already."""
        try:
            await self._conn.execute(
                "INSERT INTO domain_claims (public_id, team_id, domain, holder_domain_id,"
                " request, request_id, check_event_id, idempotency_key, request_hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                claim.public_id,
                claim.team_pk,
                claim.name,
                claim.holder_domain_id,
                claim.request,
                claim.request_id,
                claim.check_event_id,
                claim.idempotency_key,
                claim.request_hash,
            )
        except asyncpg.UniqueViolationError:
            raise NameTaken(claim.public_id) from None

    async def get(self, public_id: str, *, for_update: bool = False) -> Claim | None:
        sql = _SELECT + " WHERE c.public_id = $1" + (" FOR UPDATE OF c" if for_update else "")
        r = await self._conn.fetchrow(sql, public_id)
        return _claim(r) if r else None

    async def by_key(self, team_pk: int, key: str) -> Claim | None:
        r = await self._conn.fetchrow(
            _SELECT + " WHERE c.team_id = $1 AND c.idempotency_key = $2", team_pk, key
        )
        return _claim(r) if r else None

    async def awaiting(self, released_domain_id: str) -> Claim | None:
        """The granted claim waiting for this released domain to be gone, if any."""
        r = await self._conn.fetchrow(
            _SELECT + " WHERE c.released_domain_id = $1 AND c.domain_public_id IS NULL"
            " FOR UPDATE OF c",
            released_domain_id,
        )
        return _claim(r) if r else None

    async def waiting_on(self, holder_domain_id: str) -> list[Claim]:
        """The claims waiting for this domain's mailboxes to be gone."""
        rows = await self._conn.fetch(
            _SELECT + " WHERE c.holder_domain_id = $1 AND c.verdict = $2"
            " AND c.domain_public_id IS NULL ORDER BY c.id FOR UPDATE OF c",
            holder_domain_id,
            ClaimVerdict.WAITS_FOR_MAILBOXES.value,
        )
        return [_claim(r) for r in rows]

    async def save(self, claim: Claim) -> None:
        await self._conn.execute(
            "UPDATE domain_claims SET verdict = $2, reason = $3, claimant_check = $4,"
            " active_mailboxes = $5, released_domain_id = $6, domain_public_id = $7,"
            " check_event_id = $8, updated_at = now() WHERE id = $1",
            claim.pk,
            claim.verdict.value if claim.verdict else None,
            claim.reason,
            claim.claimant_check,
            claim.active_mailboxes,
            claim.released_domain_id,
            claim.domain_public_id,
            claim.check_event_id,
        )
