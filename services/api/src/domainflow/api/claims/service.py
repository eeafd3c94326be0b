"""The claim use cases: claim a name another team holds, and read a claim.

A claim is checked over DoH by the verifier (`domain.claim_requested`, answered by
`domain.claim_checked`); the api's handler decides it under the holder's row lock
(`domain/claims.py`) and, when granted, releases the holder's domain as a DELETE would and
creates the claimant's once the name is free (`ApiHandlers`). The request waits a bounded
time for all that, like a create; a retry with the same Idempotency-Key joins it.
"""

from __future__ import annotations

import re
from dataclasses import asdict

from domainflow.api.domain.claims import MOVES, Claim, ClaimVerdict
from domainflow.api.domain.errors import (
    ClaimRefused,
    DomainExists,
    DomainNotFound,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    NameTaken,
    NothingToClaim,
)
from domainflow.api.domain.events import records_for
from domainflow.api.domain.keys import Principal
from domainflow.api.domain.model import Domain
from domainflow.api.domains.service import AddDomain, Changes, CheckedDomain, DomainService
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork, Work
from domainflow.contracts import ClaimRequested, NamedRecord
from domainflow.kit.ids import new_id

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class ClaimService:
    def __init__(
        self, uow: UnitOfWork, settings: ApiSettings, changes: Changes, domains: DomainService
    ) -> None:
        self._uow = uow
        self._settings = settings
        self._changes = changes
        self._domains = domains

    async def claim(
        self,
        principal: Principal,
        command: AddDomain,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Claim:
        """Claim the name in `command` (the claimant's domain as a create would add it)."""
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidIdempotencyKey()
        fingerprint = command.fingerprint()
        if idempotency_key is not None:
            seen = await self._by_key(principal, idempotency_key, fingerprint)
            if seen is not None:
                return await self._answer(seen)
        checked = self._domains.check(command)
        await self._domains.spend_budget(principal)
        public_id = new_id("mclm")
        try:
            await self._open(
                principal, checked, public_id, request_id, (idempotency_key, fingerprint)
            )
        except NameTaken:  # the same key, raced: the first request's claim is the answer
            assert idempotency_key is not None
            seen = await self._by_key(principal, idempotency_key, fingerprint)
            assert seen is not None
            public_id = seen
        return await self._answer(public_id)

    async def get(self, principal: Principal, public_id: str) -> Claim:
        async with self._uow.read() as work:
            claim = await work.claims.get(public_id)
        if claim is None or claim.team_pk != principal.team_pk:
            raise DomainNotFound(public_id)
        return claim

    async def _by_key(self, principal: Principal, key: str, fingerprint: str) -> str | None:
        async with self._uow.read() as work:
            seen = await work.claims.by_key(principal.team_pk, key)
        if seen is None:
            return None
        if seen.request_hash != fingerprint:
            raise IdempotencyKeyReused(seen.public_id)
        return seen.public_id

    async def _open(
        self,
        principal: Principal,
        checked: CheckedDomain,
        public_id: str,
        request_id: str,
        keyed: tuple[str | None, str],
    ) -> None:
        idempotency_key, fingerprint = keyed
        async with self._uow.transaction() as work:
            holder = await work.domains.holding(checked.name)
            if holder is None:
                raise NothingToClaim(checked.name)
            if holder.team_pk == principal.team_pk:
                raise DomainExists(holder.name, holder.public_id)
            how = self._domains.claim_how(principal, checked.name)
            request = ClaimRequested(
                correlation_id=request_id,
                team_id=principal.team_public_id,
                claim_id=public_id,
                domain_id=holder.public_id,
                domain=checked.name,
                claimant=NamedRecord(name=how.txt_name, value=how.txt_value),
                holder=records_for(holder, self._settings.records.rules).verification,
            )
            await work.claims.add(
                Claim(
                    public_id=public_id,
                    team_pk=principal.team_pk,
                    team_public_id=principal.team_public_id,
                    name=checked.name,
                    holder_domain_id=holder.public_id,
                    request={**asdict(checked), "mode": checked.mode.value},
                    request_id=request_id,
                    check_event_id=request.event_id,
                    idempotency_key=idempotency_key,
                    request_hash=fingerprint,
                )
            )
            await work.emit(request)

    async def _answer(self, public_id: str) -> Claim:
        """Wait (bounded) for the claim to settle; a refusal is raised with its reason."""
        claim = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda c: c.settled,
            self._settings.waits.verify_seconds + self._settings.waits.create_seconds,
        )
        refuse(claim)
        return claim

    async def _load(self, public_id: str) -> Claim:
        async with self._uow.read() as work:
            claim = await work.claims.get(public_id)
        assert claim is not None  # claims are never removed
        return claim


async def recheck_waiting(work: Work, settings: ApiSettings, holder: Domain) -> None:
    """The holder's last mailbox is gone: the claims waiting for it are checked again (the
    DNS may have changed meanwhile), as when they were made."""
    for claim in await work.claims.waiting_on(holder.public_id):
        prefix = settings.records.verification_value_prefix
        request = ClaimRequested(
            correlation_id=claim.request_id,
            team_id=claim.team_public_id,
            claim_id=claim.public_id,
            domain_id=holder.public_id,
            domain=claim.name,
            claimant=NamedRecord(
                name=f"{settings.records.verification_prefix}.{claim.name}",
                value=f"{prefix}{claim.team_public_id}",
            ),
            holder=records_for(holder, settings.records.rules).verification,
        )
        claim.verdict = None
        claim.reason = None
        claim.check_event_id = request.event_id
        await work.claims.save(claim)
        await work.emit(request)


def refuse(claim: Claim) -> None:
    """Raise the refusal a settled claim that does not move the name comes to (one waiting
    for the holder's mailboxes is not refused: it goes on once they are gone)."""
    verdict = claim.verdict
    if verdict is None or verdict in MOVES:
        return
    expected = None
    if verdict is ClaimVerdict.TXT_MISSING and claim.claimant_check:
        check = claim.claimant_check
        expected = {"type": "TXT", "name": check.get("name"), "value": check.get("expected")}
    raise ClaimRefused(
        verdict.value,
        claim.reason or verdict.value,
        expected_record=expected,
        active_mailboxes=claim.active_mailboxes,
        region=str(claim.request.get("region", "")) or None,
    )
