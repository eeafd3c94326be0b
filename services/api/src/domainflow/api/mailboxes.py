"""The api's use cases for mailboxes: create, read, list, delete (the controller calls these).

Where an address may live (seed 001, "Custom domains vs @myagent.mx"):

- on a custom domain: the team's own domain, and only once it is `verified`. The domain row
  is locked FOR SHARE while the mailbox is inserted, so a create racing a DELETE of the domain
  serialises with it: either the mailbox lands first and the deletion answers 409
  `domain_in_use`, or the deletion lands first and the create answers 409 `domain_deleting`.
  A name the team has not added answers 409 `domain_not_found` (not 404: the mailbox
  resource exists, it is the domain the request depends on that is missing), the same
  whether another team holds it or nobody does.
- under the shared domain (`settings.shared_mailbox_domain`): only beneath the team's own
  suffix (`domain.mailboxes.shared_suffix_domain`); no custom domain is involved. Any other
  name under the shared domain is a 400 `address_invalid` whose details name the suffix.
"""

from __future__ import annotations

import asyncpg
import msgspec
from cuid2 import create_id

from domainflow.api.adapters import mailbox_repository as repo
from domainflow.api.adapters.mailbox_repository import MailboxRow
from domainflow.api.auth import Principal
from domainflow.api.cursors import decode_cursor, page
from domainflow.api.domain.mailboxes import (
    MailboxAddressInvalid,
    normalize_address,
    shared_suffix_domain,
)
from domainflow.api.domain.state import public_status
from domainflow.api.domains import Answer
from domainflow.api.errors import ApiError
from domainflow.api.presenters import iso
from domainflow.api.settings import ApiSettings
from domainflow.contracts import DomainStatus
from domainflow.kit.database import Database


def _cuid() -> str:
    return str(create_id())


def new_mailbox_id() -> str:
    return f"mbx_{_cuid()}"


# --- shapes ---------------------------------------------------------------------------------


class CreateMailbox(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /mailboxes` body."""

    address: object = None  # checked by hand so each mistake gets its own reason


class MailboxView(msgspec.Struct):
    id: str
    address: str
    domain: str
    #: The custom domain's id; null under the shared domain.
    domain_id: str | None
    shared: bool
    created_at: str
    deleted_at: str | None = None


class MailboxPage(msgspec.Struct):
    items: list[MailboxView]
    next_cursor: str | None
    has_more: bool


def mailbox_view(row: MailboxRow) -> MailboxView:
    return MailboxView(
        id=row.public_id,
        address=row.address,
        domain=row.address.rpartition("@")[2],
        domain_id=row.domain_public_id,
        shared=row.domain_id is None,
        created_at=iso(row.created_at) or "",
        deleted_at=iso(row.deleted_at),
    )


def _invalid(reason: str, message: str, **extra: str) -> ApiError:
    return ApiError(
        400, "address_invalid", message, {"reason": reason, "field": "address", **extra}
    )


# --- use cases ------------------------------------------------------------------------------


class MailboxService:
    def __init__(self, db: Database, settings: ApiSettings) -> None:
        self._db = db
        self._settings = settings
        self._shared = settings.shared_mailbox_domain.strip().rstrip(".").lower()

    def _is_shared(self, domain: str) -> bool:
        return domain == self._shared or domain.endswith("." + self._shared)

    async def create(self, principal: Principal, body: CreateMailbox) -> Answer:
        try:
            local, domain = normalize_address(body.address)
        except MailboxAddressInvalid as bad:
            raise _invalid(bad.code, bad.message) from None
        address = f"{local}@{domain}"
        public_id = new_mailbox_id()
        try:
            async with self._db.transaction() as conn:
                domain_id: int | None = None
                if self._is_shared(domain):
                    suffix = shared_suffix_domain(principal.team_public_id, self._shared)
                    if domain != suffix:
                        raise _invalid(
                            "shared_suffix_required",
                            f"Addresses on {self._shared} use your team's own suffix: "
                            f'send "{local}@{suffix}".',
                            suffix=suffix,
                        )
                else:
                    locked = await repo.share_lock_team_domain(conn, principal.team_id, domain)
                    if locked is None:
                        raise ApiError(
                            409,
                            "domain_not_found",
                            f"Your team has no domain {domain}. Add it with POST /api/v1/domains "
                            f"and verify it, or use an address under {self._shared}.",
                            {"domain": domain},
                        )
                    _require_verified(locked)
                    domain_id = locked.id
                existing = await repo.active_mailbox_by_address(conn, address)
                if existing is not None:
                    raise _exists(principal, existing)
                row = await repo.insert_mailbox(
                    conn,
                    public_id=public_id,
                    team_id=principal.team_id,
                    domain_id=domain_id,
                    address=address,
                )
        except asyncpg.UniqueViolationError:
            # Another request for the same address committed first.
            async with self._db.pool.acquire() as conn:
                winner = await repo.active_mailbox_by_address(conn, address)
            if winner is None:
                raise
            raise _exists(principal, winner) from None
        return Answer(201, mailbox_view(row), f"/api/v1/mailboxes/{public_id}")

    async def get(self, principal: Principal, public_id: str) -> MailboxView:
        async with self._db.pool.acquire() as conn:
            row = await repo.team_mailbox(conn, principal.team_id, public_id)
        if row is None:
            raise _not_found(public_id)
        return mailbox_view(row)

    async def list(
        self, principal: Principal, cursor: str | None, limit: int, domain_id: str | None
    ) -> MailboxPage:
        after_id = decode_cursor("m", cursor) if cursor else 0
        async with self._db.pool.acquire() as conn:
            rows = await repo.list_team_mailboxes(
                conn,
                principal.team_id,
                after_id=after_id,
                limit=limit + 1,
                domain_public_id=domain_id,
            )
        rows, next_cursor, more = page(rows, limit, "m")
        return MailboxPage(
            items=[mailbox_view(r) for r in rows], next_cursor=next_cursor, has_more=more
        )

    async def delete(self, principal: Principal, public_id: str) -> MailboxView:
        async with self._db.transaction() as conn:
            row = await repo.soft_delete_mailbox(conn, principal.team_id, public_id)
        if row is None:
            raise _not_found(public_id)
        return mailbox_view(row)


def _require_verified(locked: repo.LockedDomain) -> None:
    details = {"domain_id": locked.public_id, "domain": locked.domain, "state": locked.status}
    if locked.status == DomainStatus.DELETING.value:
        raise ApiError(
            409,
            "domain_deleting",
            f"{locked.domain} is being deleted; it takes no new mailboxes.",
            details,
        )
    if locked.status != DomainStatus.VERIFIED.value:
        raise ApiError(
            409,
            "domain_not_verified",
            f"{locked.domain} is {locked.status}, not verified; place its DNS records and "
            f"verify it (POST /api/v1/domains/{locked.public_id}/verify) before adding "
            "mailboxes on it.",
            {
                **details,
                "verification_status": public_status(DomainStatus(locked.status)),
            },
        )


def _exists(principal: Principal, existing: MailboxRow) -> ApiError:
    if existing.team_id == principal.team_id:
        return ApiError(
            409,
            "mailbox_exists",
            f"Your team already has {existing.address} (id {existing.public_id}).",
            {"id": existing.public_id},
        )
    return ApiError(409, "mailbox_exists", f"{existing.address} is already taken.")


def _not_found(public_id: str) -> ApiError:
    return ApiError(404, "mailbox_not_found", f"No mailbox with id '{public_id}'.")
