"""The use cases for mailboxes: create, read, list, delete.

Where an address may live (seed 001, "Custom domains vs @myagent.mx"):

- on a custom domain: the team's own domain, and only once it is `verified`. The domain row
  is locked FOR SHARE while the mailbox is inserted, so a create racing a DELETE of the domain
  serialises with it: either the mailbox lands first and the deletion is refused
  (`DomainInUse`), or the deletion lands first and the create is refused
  (`MailboxDomainNotReady`, deleting). A name the team has not added is
  `MailboxDomainMissing`, the same whether another team holds it or nobody does.
- under the shared domain (`settings.names.shared_mailbox_domain`): only beneath the team's own
  suffix (`domain.mailboxes.shared_suffix_domain`); no custom domain is involved. Any other
  name under the shared domain is an `InvalidAddress` that names the suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.api.claims.service import recheck_waiting
from domainflow.api.domain.errors import (
    InvalidAddress,
    MailboxDomainMissing,
    MailboxDomainNotReady,
    MailboxDomainSendOnly,
    MailboxExists,
    MailboxNotFound,
    NameTaken,
)
from domainflow.api.domain.keys import Principal
from domainflow.api.domain.mailboxes import (
    MailboxAddressInvalid,
    normalize_address,
    shared_suffix_domain,
)
from domainflow.api.domain.pages import Page, decode_cursor, page
from domainflow.api.mailboxes.repository import LockedDomain, MailboxRow
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork, Work
from domainflow.contracts import DomainMode, DomainStatus
from domainflow.kit.ids import new_id


@dataclass(frozen=True)
class CreateMailbox:
    address: object  # as sent: each mistake in it gets its own reason


class MailboxService:
    def __init__(self, uow: UnitOfWork, settings: ApiSettings) -> None:
        self._uow = uow
        self._settings = settings
        self._shared = settings.names.shared_mailbox_domain.strip().rstrip(".").lower()

    def _is_shared(self, domain: str) -> bool:
        return domain == self._shared or domain.endswith("." + self._shared)

    async def create(self, principal: Principal, command: CreateMailbox) -> MailboxRow:
        try:
            local, domain = normalize_address(command.address)
        except MailboxAddressInvalid as bad:
            raise InvalidAddress(bad.code, bad.message) from None
        address = f"{local}@{domain}"
        try:
            async with self._uow.transaction() as work:
                domain_pk = await self._home(work, principal, local, domain)
                existing = await work.mailboxes.holding(address)
                if existing is not None:
                    raise _exists(principal, existing)
                return await work.mailboxes.add(
                    public_id=new_id("mbx"),
                    team_id=principal.team_pk,
                    domain_id=domain_pk,
                    address=address,
                )
        except NameTaken:
            # Another request for the same address committed first.
            async with self._uow.read() as work:
                winner = await work.mailboxes.holding(address)
            if winner is None:
                raise
            raise _exists(principal, winner) from None

    async def _home(self, work: Work, principal: Principal, local: str, domain: str) -> int | None:
        """The custom domain the address lives on (locked for share), or None when shared."""
        if self._is_shared(domain):
            suffix = shared_suffix_domain(principal.team_public_id, self._shared)
            if domain != suffix:
                raise InvalidAddress(
                    "shared_suffix_required",
                    f"Addresses on {self._shared} use your team's own suffix: "
                    f'send "{local}@{suffix}".',
                    suffix=suffix,
                )
            return None
        locked = await work.mailboxes.lock_team_domain(principal.team_pk, domain)
        if locked is None:
            raise MailboxDomainMissing(domain, self._shared)
        _require_verified(locked)
        return locked.id

    async def get(self, principal: Principal, public_id: str) -> MailboxRow:
        async with self._uow.read() as work:
            row = await work.mailboxes.of_team(principal.team_pk, public_id)
        if row is None:
            raise MailboxNotFound(public_id)
        return row

    async def list(
        self, principal: Principal, cursor: str | None, limit: int, domain_id: str | None
    ) -> Page[MailboxRow]:
        after_id = decode_cursor("m", cursor) if cursor else 0
        async with self._uow.read() as work:
            rows = await work.mailboxes.list_of_team(
                principal.team_pk, after_id=after_id, limit=limit + 1, domain_public_id=domain_id
            )
        return page(rows, limit, "m", lambda r: r.id)

    async def delete(self, principal: Principal, public_id: str) -> MailboxRow:
        async with self._uow.transaction() as work:
            row = await work.mailboxes.delete(principal.team_pk, public_id)
            if row is not None and row.domain_public_id is not None:
                domain = await work.domains.get(row.domain_public_id, for_update=True)
                if domain is not None and not await work.domains.active_mailboxes(domain):
                    # A claim may wait for the last mailbox on it to go.
                    await recheck_waiting(work, self._settings, domain)
        if row is None:
            raise MailboxNotFound(public_id)
        return row


def _require_verified(locked: LockedDomain) -> None:
    status = DomainStatus(locked.status)
    if locked.mode == DomainMode.SEND_ONLY.value:
        raise MailboxDomainSendOnly(locked.public_id, locked.domain)
    if status is DomainStatus.DELETING:
        raise MailboxDomainNotReady(
            locked.public_id,
            locked.domain,
            status,
            f"{locked.domain} is being deleted; it takes no new mailboxes.",
        )
    if status is not DomainStatus.VERIFIED:
        raise MailboxDomainNotReady(
            locked.public_id,
            locked.domain,
            status,
            f"{locked.domain} is {locked.status}, not verified; place its DNS records and "
            "verify it before adding mailboxes on it.",
        )


def _exists(principal: Principal, existing: MailboxRow) -> MailboxExists:
    own = existing.team_id == principal.team_pk
    return MailboxExists(existing.address, existing.public_id if own else None)
