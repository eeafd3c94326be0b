"""The api's use cases for domains: create, read, verify, delete (thin controllers call these).

Requests that start asynchronous work write the domain change and the request event in one
transaction (the outbox), then wait a bounded time for the answer to land in the database.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from cuid2 import create_id

from domainflow.api.adapters import repository
from domainflow.api.adapters.repository import DomainRow
from domainflow.api.adapters.throttle import TeamThrottle
from domainflow.api.auth import Principal
from domainflow.api.cursors import decode_cursor, page
from domainflow.api.domain import state as sm
from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
from domainflow.api.domain.records import mail_from_domain_for
from domainflow.api.errors import ApiError
from domainflow.api.handlers import records_of, state_of, status_changed
from domainflow.api.presenters import domain_view, timeline_view, verification_view
from domainflow.api.schemas import (
    CreateDomain,
    DeletionView,
    DomainPage,
    DomainView,
    TimelinePage,
    VerificationView,
)
from domainflow.api.settings import ApiSettings
from domainflow.api.waiting import DomainChanges
from domainflow.contracts import DeletionRequested, DomainRequested, DomainStatus, VerifyRequested
from domainflow.kit import outbox
from domainflow.kit.database import Connection, Database


def _cuid() -> str:
    return str(create_id())


_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d{1,2}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_MAX_METADATA_BYTES = 8192
_MAX_EXTERNAL_ID = 255
_STATUSES = {s.value for s in DomainStatus} - {DomainStatus.DELETED.value}


def new_domain_id() -> str:
    return f"mdom_{_cuid()}"


@dataclass(frozen=True)
class Answer:
    """What a use case answers: the HTTP status and the payload for the envelope."""

    status: int
    data: Any
    location: str | None = None


def _invalid(code: str, message: str, field: str = "domain") -> ApiError:
    return ApiError(400, "domain_invalid", message, {"reason": code, "field": field})


class DomainService:
    def __init__(self, db: Database, settings: ApiSettings, changes: DomainChanges) -> None:
        self._db = db
        self._settings = settings
        self._changes = changes
        self._throttle = TeamThrottle(
            db, rate=settings.domain_write_rate, burst=settings.domain_write_burst
        )

    async def _admit(self, principal: Principal) -> None:
        """429 past the team's budget: each of these requests costs shared SES requests."""
        wait = await self._throttle.admit(principal.team_id, "domain_writes")
        if wait > 0:
            seconds = math.ceil(wait)
            raise ApiError(
                429,
                "rate_limited",
                f"Your team is adding, verifying or deleting domains faster than "
                f"{self._settings.domain_write_rate:g} a second; retry in {seconds} s.",
                {"retry_after": seconds},
                headers={"Retry-After": str(seconds)},
            )

    # --- input -------------------------------------------------------------------------

    def _region(self, raw: str | None) -> str:
        region = raw if raw is not None else self._settings.default_region
        if not _REGION.match(region):
            raise _invalid(
                "region_invalid",
                f"'{region}' is not an SES region name; use one such as 'us-east-1'.",
                "region",
            )
        allowed = self._settings.allowed_regions
        if allowed and region not in allowed:
            raise _invalid(
                "region_not_offered",
                f"Region '{region}' is not offered here; choose one of: {', '.join(allowed)}.",
                "region",
            )
        return region

    @staticmethod
    def _extras(body: CreateDomain) -> tuple[str | None, dict[str, Any]]:
        if body.external_id is not None and not 0 < len(body.external_id) <= _MAX_EXTERNAL_ID:
            raise _invalid(
                "external_id_invalid",
                f"external_id must be 1 to {_MAX_EXTERNAL_ID} characters.",
                "external_id",
            )
        metadata = body.metadata or {}
        if len(msgspec.json.encode(metadata)) > _MAX_METADATA_BYTES:
            raise _invalid(
                "metadata_too_large",
                f"metadata must encode to at most {_MAX_METADATA_BYTES} bytes of JSON.",
                "metadata",
            )
        return body.external_id, metadata

    # --- use cases -----------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        body: CreateDomain,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Answer:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters, e.g. a UUID.",
            )
        request_hash = hashlib.sha256(msgspec.json.encode(body)).hexdigest()
        if idempotency_key is not None:
            replay = await self._replay(principal, idempotency_key, request_hash)
            if replay is not None:
                return replay
        try:
            name = normalize_domain(body.domain)
            mail_from = (
                mail_from_domain_for(name, body.mail_from) if body.mail_from is not None else None
            )
        except DomainNameInvalid as bad:
            field = "mail_from" if bad.code == "mail_from_invalid" else "domain"
            raise _invalid(bad.code, bad.message, field) from None
        shared = self._settings.shared_mailbox_domain.strip().rstrip(".").lower()
        if name == shared or name.endswith("." + shared):
            # The operator's shared mailbox domain and every team's suffix beneath it are ours.
            raise _invalid(
                "domain_reserved",
                f"{name} is under {shared}, which is ours: create mailboxes under your team's "
                f"suffix of {shared} directly, or add a domain you own.",
            )
        region = self._region(body.region)
        external_id, metadata = self._extras(body)
        await self._admit(principal)
        public_id = new_domain_id()
        try:
            async with self._db.transaction() as conn:
                existing = await repository.active_domain_by_name(conn, name)
                if existing is not None:
                    raise self._exists(principal, existing)
                inserted = await repository.insert_domain(
                    conn,
                    public_id=public_id,
                    team_id=principal.team_id,
                    domain=name,
                    region=region,
                    external_id=external_id,
                    metadata=metadata,
                    mail_from_domain=mail_from,
                    request_id=request_id,
                )
                await repository.note_on_timeline(
                    conn,
                    inserted.id,
                    happening="requested",
                    status_before=None,
                    status_after=inserted.status,
                    reason=f"added in {region}",
                    request_id=request_id,
                )
                if idempotency_key is not None:
                    await conn.execute(
                        "INSERT INTO idempotency_keys (team_id, key, request_hash,"
                        " domain_public_id) VALUES ($1, $2, $3, $4)",
                        principal.team_id,
                        idempotency_key,
                        request_hash,
                        public_id,
                    )
                await outbox.add(
                    conn,
                    DomainRequested(
                        correlation_id=request_id,
                        team_id=principal.team_public_id,
                        domain_id=public_id,
                        domain=name,
                        region=region,
                        mail_from_domain=mail_from,
                    ),
                )
        except ApiError as refused:
            # The name is taken: by the first request with this very key, it is a replay.
            if idempotency_key is not None and refused.code == "domain_exists":
                replay = await self._replay(principal, idempotency_key, request_hash)
                if replay is not None:
                    return replay
            raise
        except asyncpg.UniqueViolationError:
            # Another request for the same name (or with the same key) committed first.
            if idempotency_key is not None:
                replay = await self._replay(principal, idempotency_key, request_hash)
                if replay is not None:
                    return replay
            async with self._db.pool.acquire() as conn:
                winner = await repository.active_domain_by_name(conn, name)
            if winner is None:
                raise
            raise self._exists(principal, winner) from None

        return await self._created(public_id)

    async def _replay(self, principal: Principal, key: str, request_hash: str) -> Answer | None:
        """The answer to a request already made with this Idempotency-Key, if there was one."""
        async with self._db.pool.acquire() as conn:
            seen = await conn.fetchrow(
                "SELECT request_hash, domain_public_id FROM idempotency_keys"
                " WHERE team_id = $1 AND key = $2",
                principal.team_id,
                key,
            )
        if seen is None:
            return None
        if seen["request_hash"] != request_hash:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a "
                "new request.",
                {"id": seen["domain_public_id"]},
            )
        return await self._created(seen["domain_public_id"])

    async def _created(self, public_id: str) -> Answer:
        """Wait (bounded) for provisioning and answer as POST /domains does."""
        row = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda r: r.status != DomainStatus.PROVISIONING.value,
            self._settings.create_wait_seconds,
        )
        if row.status == DomainStatus.DELETED.value:
            raise ApiError(
                502,
                "provisioning_failed",
                "Provisioning failed and everything it had done was undone, so nothing is "
                "half-configured. Retry the same request to start clean.",
                {"id": public_id, "cause": row.failure_reason},
            )
        view = domain_view(row, self._settings)
        if row.status == DomainStatus.PROVISIONING.value:
            return Answer(202, view, f"/api/v1/domains/{public_id}")
        return Answer(201, view, f"/api/v1/domains/{public_id}")

    @staticmethod
    def _exists(principal: Principal, existing: DomainRow) -> ApiError:
        if existing.team_id == principal.team_id:
            return ApiError(
                409,
                "domain_exists",
                f"Your team already added {existing.domain} (id {existing.public_id}).",
                {"id": existing.public_id},
            )
        return ApiError(
            409,
            "domain_exists",
            f"{existing.domain} is already registered by another team. If it is yours, "
            "contact support to reclaim it.",
        )

    async def _load(self, public_id: str) -> DomainRow:
        async with self._db.pool.acquire() as conn:
            row = await repository.domain_by_public_id(conn, public_id, include_deleted=True)
        assert row is not None
        return row

    async def _team_domain(self, principal: Principal, public_id: str) -> DomainRow:
        async with self._db.pool.acquire() as conn:
            row = await repository.team_domain(conn, principal.team_id, public_id)
        if row is None:
            raise ApiError(404, "domain_not_found", f"No domain with id '{public_id}'.")
        return row

    async def get(self, principal: Principal, public_id: str) -> DomainView:
        return domain_view(await self._team_domain(principal, public_id), self._settings)

    async def records(self, principal: Principal, public_id: str) -> DomainRow:
        return await self._team_domain(principal, public_id)

    def records_of(self, row: DomainRow) -> Any:
        return records_of(row, self._settings)

    async def list(
        self, principal: Principal, cursor: str | None, limit: int, status: str | None
    ) -> DomainPage:
        after_id = decode_cursor("d", cursor) if cursor else 0
        statuses = None
        if status:
            statuses = [s.strip() for s in status.split(",") if s.strip()]
            unknown = [s for s in statuses if s not in _STATUSES]
            if unknown:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"Unknown status {unknown[0]!r}; filter by {', '.join(sorted(_STATUSES))}.",
                )
        async with self._db.pool.acquire() as conn:
            rows = await repository.list_team_domains(
                conn, principal.team_id, after_id=after_id, limit=limit + 1, statuses=statuses
            )
        rows, next_cursor, more = page(rows, limit, "d")
        return DomainPage(
            items=[domain_view(r, self._settings) for r in rows],
            next_cursor=next_cursor,
            has_more=more,
        )

    async def timeline(
        self, principal: Principal, public_id: str, cursor: str | None, limit: int
    ) -> TimelinePage:
        row = await self._team_domain(principal, public_id)
        before_id = decode_cursor("t", cursor) if cursor else None
        async with self._db.pool.acquire() as conn:
            entries = await repository.timeline(conn, row.id, before_id=before_id, limit=limit + 1)
        entries, next_cursor, more = page(entries, limit, "t")
        return TimelinePage(
            items=[timeline_view(e) for e in entries], next_cursor=next_cursor, has_more=more
        )

    async def verify(self, principal: Principal, public_id: str, request_id: str) -> Answer:
        await self._team_domain(principal, public_id)  # 404 for another team's domain
        await self._admit(principal)
        async with self._db.transaction() as conn:
            # The state is checked under the row lock, so a racing DELETE is seen.
            locked = await repository.domain_by_public_id(conn, public_id, for_update=True)
            if locked is None:
                raise ApiError(404, "domain_not_found", f"No domain with id '{public_id}'.")
            if locked.status == DomainStatus.PROVISIONING.value:
                raise ApiError(
                    409,
                    "domain_provisioning",
                    "The domain is still being provisioned; verify it once it is pending.",
                )
            if locked.status == DomainStatus.DELETING.value:
                raise ApiError(409, "domain_deleting", "The domain is being deleted.")
            in_flight = await conn.fetchval(
                "SELECT verify_event_id IS NOT NULL"
                " AND verify_requested_at > now() - make_interval(secs => $2)"
                " FROM domains WHERE public_id = $1",
                public_id,
                self._settings.verify_stale_seconds,
            )
            if not in_flight:  # one verification at a time per domain
                request = VerifyRequested(
                    correlation_id=request_id,
                    team_id=principal.team_public_id,
                    domain_id=public_id,
                    domain=locked.domain,
                    region=locked.region,
                    records=records_of(locked, self._settings),
                )
                await conn.execute(
                    "UPDATE domains SET verify_requested_at = now(), verify_event_id = $2,"
                    " updated_at = now() WHERE public_id = $1",
                    public_id,
                    request.event_id,
                )
                await outbox.add(conn, request)
        row = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda r: r.verify_requested_at is None,
            self._settings.verify_wait_seconds,
        )
        view: VerificationView = verification_view(row)
        return Answer(202 if view.verification_in_progress else 200, view)

    async def delete(self, principal: Principal, public_id: str, request_id: str) -> Answer:
        row = await self._team_domain(principal, public_id)
        await self._admit(principal)
        async with self._db.transaction() as conn:
            locked = await repository.domain_by_public_id(conn, public_id, for_update=True)
            if locked is None:
                raise ApiError(404, "domain_not_found", f"No domain with id '{public_id}'.")
            await request_deletion(
                conn,
                self._settings,
                locked,
                request_id=request_id,
                reason="deletion requested",
            )
        row = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda r: r.status == DomainStatus.DELETED.value,
            self._settings.create_wait_seconds,
        )
        deleted = row.status == DomainStatus.DELETED.value
        return Answer(
            200 if deleted else 202,
            DeletionView(
                id=row.public_id,
                domain=row.domain,
                state=row.status,
                deleted=deleted,
                dns_cleanup=(
                    "The domain was removed from the mail server and Amazon SES. The DNS "
                    "records in your zone are yours to remove at your DNS provider."
                ),
            ),
            None if deleted else f"/api/v1/domains/{public_id}",
        )


async def request_deletion(
    conn: Connection,
    settings: ApiSettings,
    locked: DomainRow,
    *,
    request_id: str,
    reason: str,
) -> None:
    """Move a locked domain to `deleting` and ask the provisioner to undo it (or refuse why).

    Shared by a team's DELETE and an operator's release: both keep the same rules.
    """
    active = await conn.fetchval(
        "SELECT count(*) FROM mailboxes WHERE domain_id = $1 AND deleted_at IS NULL",
        locked.id,
    )
    if active:
        raise ApiError(
            409,
            "domain_in_use",
            f"{active} active mailbox{'es' if active != 1 else ''} still "
            f"live{'' if active != 1 else 's'} on {locked.domain}; "
            "delete them first, then the domain.",
            {"active_mailboxes": active},
        )
    try:
        move = sm.transition(state_of(locked), sm.DeletionRequested())
    except sm.TransitionRefused:
        raise ApiError(
            409,
            "domain_provisioning",
            "The domain is still being provisioned; delete it once it is pending.",
        ) from None
    if not move.changed_status:
        return  # already deleting: a repeated request joins the first
    await repository.update_domain(conn, locked.public_id, status=move.new_state.status.value)
    await repository.note_on_timeline(
        conn,
        locked.id,
        happening="deletion_requested",
        status_before=locked.status,
        status_after=move.new_state.status.value,
        reason=reason,
        request_id=request_id,
    )
    await outbox.add(
        conn,
        # Subscribers (the verifier first: it stops probing) see the move into `deleting`.
        await status_changed(
            conn,
            settings,
            locked,
            DomainStatus(locked.status),
            move,
            reason,
            correlation_id=request_id,
            causation_id=None,
        ),
        DeletionRequested(
            correlation_id=request_id,
            team_id=locked.team_public_id,
            domain_id=locked.public_id,
            domain=locked.domain,
            region=locked.region,
        ),
    )
