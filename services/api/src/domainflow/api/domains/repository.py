"""SQL for domains: the entity, its timeline, idempotency keys and the counts operators watch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import asyncpg

from domainflow.api.domain.errors import NameTaken
from domainflow.api.domain.model import Domain
from domainflow.contracts import (
    DkimStatus,
    DnsWarning,
    DomainMode,
    DomainStatus,
    RecordCheck,
    VerificationOutcome,
)
from domainflow.kit.database import Connection
from domainflow.kit.metrics import Gauge

#: A domain's live mailboxes, as a column of any query over `domains d`.
_MAILBOX_COUNT: Final = """(SELECT count(*) FROM mailboxes m
        WHERE m.domain_id = d.id AND m.deleted_at IS NULL) AS mailbox_count"""

_SELECT: Final = f"""
SELECT d.*, t.public_id AS team_public_id, {_MAILBOX_COUNT}
FROM domains d JOIN teams t ON t.id = d.team_id
"""

#: One domain by its public id alone: the unique index is the only plan, whatever the
#: statistics say (with the team in the WHERE clause, a freshly filled table was read through
#: the team's index, every row of the team visited to find one). The caller knows the team.
_ONE: Final = f"""
SELECT d.*, {_MAILBOX_COUNT}, d.xmin::text AS row_version
FROM domains d WHERE d.public_id = $1
"""

#: Where one domain stands (`Domain.version`), and whose it is, without the domain: the
#: transaction that wrote its row last (`xmin`: every write of the row makes a new version of
#: it, stamped with its writer's transaction id) and its live mailboxes.
_VERSION: Final = f"""
SELECT d.team_id, d.status, d.xmin::text AS row_version, {_MAILBOX_COUNT}
FROM domains d WHERE d.public_id = $1
"""


def _version(r: asyncpg.Record) -> str:
    return f"{r['row_version']}.{r['mailbox_count']}"


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


@dataclass(frozen=True)
class RememberedRequest:
    """What an Idempotency-Key was first used for."""

    request_hash: str
    domain_id: str


def _checks(raw: list[dict[str, Any]] | None) -> tuple[RecordCheck, ...] | None:
    if raw is None:
        return None
    return tuple(RecordCheck.model_validate(c) for c in raw)


def _by_account(rows: list[asyncpg.Record], default_account: str) -> dict[str, int]:
    # '' counts the domains placed before accounts: they live in the default account.
    found: dict[str, int] = {}
    for r in rows:
        name = r["account"] or default_account
        found[name] = found.get(name, 0) + r["identities"]
    return found


def _domain(r: asyncpg.Record, team_public_id: str | None = None) -> Domain:
    return Domain(
        pk=r["id"],
        public_id=r["public_id"],
        team_pk=r["team_id"],
        team_public_id=team_public_id or r["team_public_id"],
        name=r["domain"],
        status=DomainStatus(r["status"]),
        region=r["region"],
        request_id=r["request_id"],
        created_at=r["created_at"],
        consecutive_failures=r["consecutive_failures"],
        degraded=r["degraded"],
        external_id=r["external_id"],
        metadata=r["metadata"] or {},
        mail_from_domain=r["mail_from_domain"],
        dkim_tokens=tuple(r["dkim_tokens"] or ()),
        ses_dkim_status=DkimStatus(r["ses_dkim_status"]),
        last_checks=_checks(r["last_checks"]),
        last_warnings=tuple(DnsWarning.model_validate(w) for w in r["last_warnings"] or ()),
        last_outcome=VerificationOutcome(r["last_outcome"]) if r["last_outcome"] else None,
        failure_reason=r["failure_reason"],
        verified_at=r["verified_at"],
        ownership_proven_at=r["ownership_proven_at"],
        last_checked_at=r["last_checked_at"],
        verify_event_id=r["verify_event_id"],
        verify_requested_at=r["verify_requested_at"],
        deleted_at=r["deleted_at"],
        mode=DomainMode(r["mode"]),
        ses_dkim_signing_enabled=r["ses_dkim_signing_enabled"],
        ses_identity_verification_status=r["ses_identity_verification_status"],
        ses_mail_from_status=DkimStatus(r["ses_mail_from_status"])
        if r["ses_mail_from_status"]
        else None,
        ses_verified_for_sending=r["ses_verified_for_sending"],
        ses_identity_checked_at=r["ses_identity_checked_at"],
        ses_account=r["ses_account"],
        sequence=r["sequence"],
        mailbox_count=r["mailbox_count"],
        updated_at=r["updated_at"],
    )


class DomainRepository:
    """The api's domains in PostgreSQL, over one connection (and its transaction, if any)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(
        self, public_id: str, *, for_update: bool = False, include_deleted: bool = False
    ) -> Domain | None:
        sql = _SELECT + " WHERE d.public_id = $1"
        if not include_deleted:
            sql += " AND d.status <> 'deleted'"
        if for_update:
            sql += " FOR UPDATE OF d"
        r = await self._conn.fetchrow(sql, public_id)
        return _domain(r) if r else None

    async def of_team(self, team_pk: int, team_public_id: str, public_id: str) -> Domain | None:
        """The team's live domain `public_id` (None for another team's or a deleted one)."""
        r = await self._conn.fetchrow(_ONE, public_id)
        if r is None or r["team_id"] != team_pk or r["status"] == DomainStatus.DELETED:
            return None
        return replace(_domain(r, team_public_id), version=_version(r))

    async def version_of_team(self, team_pk: int, public_id: str) -> str | None:
        """Where the team's live domain `public_id` stands (`Domain.version`), read alone."""
        r = await self._conn.fetchrow(_VERSION, public_id)
        if r is None or r["team_id"] != team_pk or r["status"] == DomainStatus.DELETED:
            return None
        return _version(r)

    async def holding(self, name: str) -> Domain | None:
        """The live domain that holds `name`, whichever team's it is."""
        r = await self._conn.fetchrow(
            _SELECT + " WHERE d.domain = $1 AND d.status <> 'deleted'", name
        )
        return _domain(r) if r else None

    async def list_of_team(
        self, team_pk: int, *, after: str | None, limit: int, statuses: list[str] | None
    ) -> list[Domain] | None:
        """The team's live domains, newest first, after the one whose public id is `after`;
        None when `after` names no domain of the team (a cursor it was never given)."""
        if after is not None:
            after_pk = await self._conn.fetchval(
                "SELECT id FROM domains WHERE public_id = $1 AND team_id = $2", after, team_pk
            )
            if after_pk is None:
                return None
        else:
            after_pk = None
        rows = await self._conn.fetch(
            _SELECT + " WHERE d.team_id = $1 AND d.status <> 'deleted'"
            " AND ($2::bigint IS NULL OR d.id < $2)"
            " AND ($3::text[] IS NULL OR d.status = ANY($3::text[])) ORDER BY d.id DESC LIMIT $4",
            team_pk,
            after_pk,
            statuses,
            limit,
        )
        return [_domain(r) for r in rows]

    async def add(self, domain: Domain) -> Domain:
        """Insert a new domain; `NameTaken` when another live domain holds the name."""
        try:
            pk = await self._conn.fetchval(
                "INSERT INTO domains (public_id, team_id, domain, status, region, external_id,"
                " metadata, mail_from_domain, request_id, mode, sequence, ses_account)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                domain.public_id,
                domain.team_pk,
                domain.name,
                domain.status.value,
                domain.region,
                domain.external_id,
                domain.metadata,
                domain.mail_from_domain,
                domain.request_id,
                domain.mode.value,
                domain.sequence,
                domain.ses_account,
            )
        except asyncpg.UniqueViolationError:
            raise NameTaken(domain.name) from None
        stored = await self.get(domain.public_id, include_deleted=True)
        assert stored is not None
        assert stored.pk == pk
        return stored

    async def identities_by_account(self, region: str, default_account: str) -> dict[str, int]:
        """The SES identities each account holds in `region`: its domains not yet deleted
        (provisioning and deleting ones included, their identity may exist), as the triggers
        of migration 012 count them. Taken under a lock per region until the transaction
        ends, so two creates never both take the last room of an account."""
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ses-placement:' || $1, 0))", region
        )
        rows = await self._conn.fetch(
            "SELECT account, identities FROM ses_identity_counts WHERE region = $1", region
        )
        return _by_account(rows, default_account)

    async def identities_by_place(self, default_account: str) -> dict[tuple[str, str], int]:
        """The SES identities of every account and region (operators: `domainflow accounts`)."""
        rows = await self._conn.fetch(
            "SELECT account, region, identities FROM ses_identity_counts WHERE identities > 0"
        )
        found: dict[tuple[str, str], int] = {}
        for r in rows:
            place = (r["account"] or default_account, r["region"])
            found[place] = found.get(place, 0) + r["identities"]
        return found

    async def save(self, domain: Domain) -> None:
        """Write every field that changes over a domain's life, and touch `updated_at`."""
        await self._conn.execute(
            "UPDATE domains SET status = $2, consecutive_failures = $3, degraded = $4,"
            " mail_from_domain = $5, dkim_tokens = $6, ses_dkim_status = $7, last_checks = $8,"
            " last_outcome = $9, failure_reason = $10, verified_at = $11,"
            " last_checked_at = $12, verify_event_id = $13, verify_requested_at = $14,"
            " deleted_at = $15, mode = $16, ses_dkim_signing_enabled = $17,"
            " ses_identity_verification_status = $18, ses_mail_from_status = $19,"
            " ses_verified_for_sending = $20, ses_identity_checked_at = $21, sequence = $22,"
            " last_warnings = $23, ownership_proven_at = $24, updated_at = now() WHERE id = $1",
            domain.pk,
            domain.status.value,
            domain.consecutive_failures,
            domain.degraded,
            domain.mail_from_domain,
            list(domain.dkim_tokens),
            domain.ses_dkim_status.value,
            None
            if domain.last_checks is None
            else [c.model_dump(mode="json") for c in domain.last_checks],
            domain.last_outcome.value if domain.last_outcome else None,
            domain.failure_reason,
            domain.verified_at,
            domain.last_checked_at,
            domain.verify_event_id,
            domain.verify_requested_at,
            domain.deleted_at,
            domain.mode.value,
            domain.ses_dkim_signing_enabled,
            domain.ses_identity_verification_status,
            domain.ses_mail_from_status.value if domain.ses_mail_from_status else None,
            domain.ses_verified_for_sending,
            domain.ses_identity_checked_at,
            domain.sequence,
            [w.model_dump(mode="json") for w in domain.last_warnings],
            domain.ownership_proven_at,
        )

    async def active_mailboxes(self, domain: Domain) -> int:
        count: int = await self._conn.fetchval(
            "SELECT count(*) FROM mailboxes WHERE domain_id = $1 AND deleted_at IS NULL",
            domain.pk,
        )
        return count

    # --- the timeline ------------------------------------------------------------------------

    async def note(
        self,
        domain: Domain,
        *,
        happening: str,
        status_before: str | None,
        reason: str,
        request_id: str,
        outcome: str | None = None,
        ses_dkim_status: str | None = None,
        checks: list[dict[str, Any]] | None = None,
    ) -> None:
        """A line on the domain's timeline, with its status now as the status after."""
        await self._conn.execute(
            "INSERT INTO domain_timeline (domain_id, happening, status_before, status_after,"
            " reason, outcome, ses_dkim_status, checks, request_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            domain.pk,
            happening,
            status_before,
            domain.status.value,
            reason,
            outcome,
            ses_dkim_status,
            checks,
            request_id,
        )

    async def timeline(
        self, domain: Domain, *, before_id: int | None, limit: int
    ) -> list[TimelineEntry]:
        """Newest first; `before_id` continues a previous page."""
        rows = await self._conn.fetch(
            "SELECT id, at, happening, status_before, status_after, reason, outcome,"
            " ses_dkim_status, checks, request_id FROM domain_timeline"
            " WHERE domain_id = $1 AND ($2::bigint IS NULL OR id < $2)"
            " ORDER BY id DESC LIMIT $3",
            domain.pk,
            before_id,
            limit,
        )
        return [TimelineEntry(**dict(r)) for r in rows]

    # --- idempotency keys ----------------------------------------------------------------------

    async def remembered(self, team_pk: int, key: str) -> RememberedRequest | None:
        r = await self._conn.fetchrow(
            "SELECT request_hash, domain_public_id FROM idempotency_keys"
            " WHERE team_id = $1 AND key = $2",
            team_pk,
            key,
        )
        return RememberedRequest(r["request_hash"], r["domain_public_id"]) if r else None

    async def remember(self, team_pk: int, key: str, request_hash: str, domain_id: str) -> None:
        try:
            await self._conn.execute(
                "INSERT INTO idempotency_keys (team_id, key, request_hash, domain_public_id)"
                " VALUES ($1, $2, $3, $4)",
                team_pk,
                key,
                request_hash,
                domain_id,
            )
        except asyncpg.UniqueViolationError:
            raise NameTaken(key) from None

    async def spend_keys(self, domain_id: str) -> int:
        """Forget the keys that created a domain that is gone; how many there were."""
        spent: str = await self._conn.execute(
            "DELETE FROM idempotency_keys WHERE domain_public_id = $1", domain_id
        )
        return int(spent.rsplit(" ", 1)[-1])


#: What `/metrics` reports of domains (see kit/metrics.py). Both read a few rows whatever the
#: number of domains: the counts the trigger of migration 007 keeps, and the first entry of
#: the index of unanswered verify requests.
DOMAIN_GAUGES: Final = (
    Gauge(
        "domainflow_domains",
        "Domains in each state (deleted ones are not counted).",
        "SELECT s.status, s.value FROM ("
        " SELECT sum(provisioning)::bigint AS provisioning, sum(pending)::bigint AS pending,"
        " sum(verified)::bigint AS verified, sum(failed)::bigint AS failed,"
        " sum(deleting)::bigint AS deleting"
        " FROM domain_counts) AS c CROSS JOIN LATERAL (VALUES"
        " ('provisioning', c.provisioning), ('pending', c.pending), ('verified', c.verified),"
        " ('failed', c.failed), ('deleting', c.deleting)) AS s (status, value)",
        ("status",),
    ),
    Gauge(
        "domainflow_ses_identities",
        "SES identities per account and region (the account '' is the default one, that of"
        " DOMAINFLOW_SES_ACCOUNT): placement takes no new domain in an account at its cap.",
        "SELECT account, region, identities AS value FROM ses_identity_counts",
        ("account", "region"),
    ),
    Gauge(
        "domainflow_verifications_waiting_seconds",
        "Age of the oldest verify request still unanswered; it grows while the verifier lags.",
        "SELECT coalesce(extract(epoch FROM now() - min(verify_requested_at)), 0) AS value"
        " FROM domains WHERE verify_event_id IS NOT NULL",
    ),
)
