"""The use cases for domains: add, read, list, verify, delete, and the deletion operators start.

They take typed commands, return typed results and raise the domain's errors
(`domain/errors.py`); nothing here knows HTTP. Requests that start asynchronous work write the
domain change and the request event in one unit of work (the outbox), then wait a bounded
time for the answer to land (`Changes`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol, TypeVar

import msgspec

from domainflow.api.domain import state as sm
from domainflow.api.domain.errors import (
    ClaimHow,
    DeletedSinceKeyed,
    DomainBusy,
    DomainExists,
    DomainInUse,
    DomainNotFound,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidDomainInput,
    InvalidIdempotencyKey,
    InvalidRequest,
    NameTaken,
    NoSesCapacity,
    ProvisioningFailed,
    RateLimited,
    StaleVersion,
    UnsupportedChange,
)
from domainflow.api.domain.events import Why, created, records_for, status_changed, trigger_of
from domainflow.api.domain.keys import Principal
from domainflow.api.domain.model import Domain
from domainflow.api.domain.names import (
    DomainNameInvalid,
    normalize_domain,
    registrable,
    special_use,
    under,
)
from domainflow.api.domain.pages import Page, decode_cursor, decode_key_cursor, keyed_page, page
from domainflow.api.domain.records import mail_from_domain_for
from domainflow.api.domains.repository import TimelineEntry
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork, Work
from domainflow.contracts import (
    ChangeReason,
    ChangeTrigger,
    DeletionRequested,
    DnsRecords,
    DomainMode,
    DomainRequested,
    DomainStatus,
    Event,
    ReceivingRequested,
    VerifyRequested,
)
from domainflow.kit.ids import new_id
from domainflow.kit.logging import get_logger
from domainflow.kit.ses_accounts import place, usage_of

log = get_logger(__name__)

T = TypeVar("T")

_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d{1,2}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_MAX_METADATA_BYTES = 8192
_MAX_NAME = 253  # octets of a whole domain name (RFC 1035)
_MAX_EXTERNAL_ID = 255
_LISTED_STATUSES = frozenset(s.value for s in DomainStatus) - {DomainStatus.DELETED.value}


class Changes(Protocol):
    """Wakes a waiting request when its domain changes, on whichever replica changed it."""

    async def wait_for(
        self,
        public_id: str,
        load: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline for the whole wait, reloads included
    ) -> T: ...


@dataclass(frozen=True)
class AddDomain:
    """A request to add a domain, as the client sent it (`domain` unchecked: each mistake in
    it gets its own reason)."""

    domain: object
    region: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    mail_from: str | None = None
    mode: str | None = None

    def fingerprint(self) -> str:
        """What an Idempotency-Key is held to: the same key must come with the same request."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()


@dataclass(frozen=True)
class ChangeDomain:
    """A partial update as sent (`fields`), and what the client saw when it decided (`still`:
    whether the domain is still as it was; None when the client did not say)."""

    fields: dict[str, object]
    still: Callable[[Domain], bool] | None = None


@dataclass(frozen=True)
class Added:
    """The domain; `settled` when provisioning ended within the wait bound."""

    domain: Domain
    settled: bool


@dataclass(frozen=True)
class Deletion:
    domain: Domain
    done: bool  # gone from SES and the mail server already


@dataclass(frozen=True)
class CheckedDomain:
    """An AddDomain whose every field passed (a claim keeps it until the name is free)."""

    name: str
    region: str
    mail_from: str
    mode: DomainMode
    external_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


class DomainService:
    def __init__(self, uow: UnitOfWork, settings: ApiSettings, changes: Changes) -> None:
        self._uow = uow
        self._settings = settings
        self._changes = changes

    # --- add ---------------------------------------------------------------------------------

    async def add(
        self,
        principal: Principal,
        command: AddDomain,
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Added:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidIdempotencyKey()
        fingerprint = command.fingerprint()
        if idempotency_key is not None:
            replay = await self._replay(principal, idempotency_key, fingerprint)
            if replay is not None:
                return replay
        checked = self._check(command)
        await self._spend_budget(principal)
        public_id = new_id("mdom")
        try:
            await self._insert(
                principal, checked, public_id, request_id, idempotency_key, fingerprint
            )
        except (DomainExists, NameTaken) as refused:
            # The name (or key) is taken: by the first request with this very key, it is a replay.
            if idempotency_key is not None:
                replay = await self._replay(principal, idempotency_key, fingerprint)
                if replay is not None:
                    return replay
            if isinstance(refused, DomainExists):
                raise
            async with self._uow.read() as work:
                winner = await work.domains.holding(checked.name)
            if winner is None:
                raise
            raise self._exists(principal, winner) from None
        return await self._settled(public_id)

    def _exists(self, principal: Principal, holder: Domain) -> DomainExists:
        """The name is held: by the caller's team (its id), or by another (how to claim it)."""
        if holder.team_pk == principal.team_pk:
            return DomainExists(holder.name, holder.public_id)
        return DomainExists(holder.name, None, self._claim_how(principal, holder.name))

    def _claim_how(self, principal: Principal, name: str) -> ClaimHow:
        records = self._settings.records
        return ClaimHow(
            txt_name=f"{records.verification_prefix}.{name}",
            txt_value=f"{records.verification_value_prefix}{principal.team_public_id}",
        )

    def check(self, command: AddDomain) -> CheckedDomain:
        """Every field of a request to add a domain, checked (or `InvalidDomainInput`)."""
        return self._check(command)

    async def spend_budget(self, principal: Principal) -> None:
        """Spend one of the team's domain writes (or `RateLimited`)."""
        await self._spend_budget(principal)

    def claim_how(self, principal: Principal, name: str) -> ClaimHow:
        return self._claim_how(principal, name)

    def _check(self, command: AddDomain) -> CheckedDomain:
        try:
            name = normalize_domain(command.domain)
            # Every domain sends with a custom MAIL FROM: the operator's label unless asked.
            label = self._settings.records.mail_from_label
            if command.mail_from is None and len(name) + len(label) + 1 > _MAX_NAME:
                raise DomainNameInvalid(
                    "domain_too_long",
                    f"A domain is at most {_MAX_NAME - len(label) - 1} characters here, so that "
                    f"its MAIL FROM subdomain ({label}.{name[:20]}...) fits in {_MAX_NAME}; "
                    f"this one is {len(name)}.",
                )
            chosen = label if command.mail_from is None else command.mail_from
            mail_from = mail_from_domain_for(name, chosen)
        except DomainNameInvalid as bad:
            field = "mail_from" if bad.code == "mail_from_invalid" else "domain"
            raise InvalidDomainInput(bad.code, bad.message, field) from None
        self._refuse_names_nobody_may_hold(name)
        region = self._region(command.region)
        external_id, metadata = _extras(command)
        return CheckedDomain(name, region, mail_from, _mode(command.mode), external_id, metadata)

    def _refuse_names_nobody_may_hold(self, name: str) -> None:
        settings = self._settings
        shared = settings.names.shared_mailbox_domain.strip().rstrip(".").lower()
        if under(name, shared):
            # The operator's shared mailbox domain and every team's suffix beneath it are ours.
            raise InvalidDomainInput(
                "domain_reserved",
                f"{name} is under {shared}, which is ours: create mailboxes under your team's "
                f"suffix of {shared} directly, or add a domain you own.",
                "domain",
            )
        set_aside = special_use(name, frozenset(settings.names.special_use_allowed))
        if set_aside is not None:
            raise InvalidDomainInput(
                "domain_special_use",
                f"{name} is under {set_aside}, a name set aside for special use (RFC 6761) that "
                "nobody can own; add a domain registered to you.",
                "domain",
            )
        for held in self._reserved:
            if under(name, held):
                raise InvalidDomainInput(
                    "domain_reserved",
                    f"{name} is under {held}, which no team can add here (the platform's own "
                    "domains and well-known mailbox providers); add a domain you own.",
                    "domain",
                )

    @cached_property
    def _reserved(self) -> tuple[str, ...]:
        """The operator's own registrable domains and the configured reserved ones."""
        settings = self._settings
        sender = settings.names.notify_from.rpartition("@")[2].strip(" >").lower()
        own = (settings.records.mx_target, settings.names.shared_mailbox_domain, sender)
        names = {registrable(n.strip().rstrip(".").lower()) for n in own if n.strip()}
        names |= {n.strip().rstrip(".").lower() for n in settings.names.reserved_domains}
        return tuple(sorted(n for n in names if n))

    def _region(self, raw: str | None) -> str:
        region = raw if raw is not None else self._settings.regions.default
        if not _REGION.fullmatch(region):
            raise InvalidDomainInput(
                "region_invalid",
                f"'{region}' is not an SES region name; use one such as 'us-east-1'.",
                "region",
            )
        offered = self._settings.regions.offered
        if region not in offered:
            raise InvalidDomainInput(
                "region_not_offered",
                f"Region '{region}' is not offered here; choose one of: "
                f"{', '.join(sorted(offered))}.",
                "region",
            )
        return region

    async def _insert(
        self,
        principal: Principal,
        checked: CheckedDomain,
        public_id: str,
        request_id: str,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> None:
        async with self._uow.transaction() as work:
            existing = await work.domains.holding(checked.name)
            if existing is not None:
                raise self._exists(principal, existing)
            await open_domain(
                work,
                self._settings,
                principal.team_pk,
                principal.team_public_id,
                checked,
                public_id=public_id,
                request_id=request_id,
                reason=f"added in {checked.region}",
            )
            if idempotency_key is not None:
                await work.domains.remember(
                    principal.team_pk, idempotency_key, fingerprint, public_id
                )

    async def _replay(self, principal: Principal, key: str, fingerprint: str) -> Added | None:
        """The answer to a request already made with this Idempotency-Key, if there was one."""
        async with self._uow.read() as work:
            seen = await work.domains.remembered(principal.team_pk, key)
        if seen is None:
            return None
        if seen.request_hash != fingerprint:
            raise IdempotencyKeyReused(seen.domain_id)
        return await self._settled(seen.domain_id, replay=True)

    async def _settled(self, public_id: str, *, replay: bool = False) -> Added:
        """Wait (bounded) for provisioning to end, and say how it ended.

        A domain that is gone is told once: the answer spends the Idempotency-Key that
        created it, so the same request sent again starts afresh instead of hearing the
        same end for ever.
        """
        domain = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda d: d.status is not DomainStatus.PROVISIONING,
            self._settings.waits.create_seconds,
        )
        if domain.status is DomainStatus.DELETED:
            async with self._uow.transaction() as work:
                await work.domains.spend_keys(public_id)
            if domain.failure_reason is None and replay:
                raise DeletedSinceKeyed(public_id)  # provisioned, then deleted or released
            raise ProvisioningFailed(public_id, domain.failure_reason)
        return Added(domain, settled=domain.status is not DomainStatus.PROVISIONING)

    async def _spend_budget(self, principal: Principal) -> None:
        """Each of these requests costs shared SES requests: past the team's budget, refuse."""
        rate = self._settings.write_limit.domain_write_rate
        if rate <= 0:  # no budget configured
            return
        async with self._uow.transaction() as work:
            decision = await work.teams.spend(
                principal.team_pk,
                "domain_writes",
                rate=rate,
                burst=self._settings.write_limit.domain_write_burst,
            )
        if not decision.admitted:
            raise RateLimited(math.ceil(decision.retry_after), rate)

    # --- read ----------------------------------------------------------------------------------

    async def _load(self, public_id: str) -> Domain:
        async with self._uow.read() as work:
            domain = await work.domains.get(public_id, include_deleted=True)
        assert domain is not None  # domains are never removed, only marked deleted
        return domain

    async def get(self, principal: Principal, public_id: str) -> Domain:
        async with self._uow.read() as work:
            domain = await work.domains.of_team(
                principal.team_pk, principal.team_public_id, public_id
            )
        if domain is None:
            raise DomainNotFound(public_id)
        return domain

    async def version(self, principal: Principal, public_id: str) -> str:
        """Where the team's domain stands (`Domain.version`), read without the domain: for a
        reader that holds how the domain was shown at some version. `DomainNotFound` as `get`."""
        async with self._uow.read() as work:
            version = await work.domains.version_of_team(principal.team_pk, public_id)
        if version is None:
            raise DomainNotFound(public_id)
        return version

    def records(self, domain: Domain) -> DnsRecords:
        return records_for(domain, self._settings.records.rules)

    async def list(
        self, principal: Principal, cursor: str | None, limit: int, status: str | None
    ) -> Page[Domain]:
        after = decode_key_cursor("d", cursor) if cursor else None
        statuses = None
        if status:
            statuses = [s.strip() for s in status.split(",") if s.strip()]
            unknown = [s for s in statuses if s not in _LISTED_STATUSES]
            if unknown:
                raise InvalidRequest(
                    "invalid_request",
                    f"Unknown status {unknown[0]!r}; filter by "
                    f"{', '.join(sorted(_LISTED_STATUSES))}.",
                    "status",
                )
        async with self._uow.read() as work:
            domains = await work.domains.list_of_team(
                principal.team_pk, after=after, limit=limit + 1, statuses=statuses
            )
        if domains is None:
            raise InvalidCursor()
        return keyed_page(domains, limit, "d", lambda d: d.public_id)

    async def timeline(
        self, principal: Principal, public_id: str, cursor: str | None, limit: int
    ) -> Page[TimelineEntry]:
        domain = await self.get(principal, public_id)
        before_id = decode_cursor("t", cursor) if cursor else None
        async with self._uow.read() as work:
            entries = await work.domains.timeline(domain, before_id=before_id, limit=limit + 1)
        return page(entries, limit, "t", lambda e: e.id)

    # --- verify ----------------------------------------------------------------------------------

    async def verify(self, principal: Principal, public_id: str, request_id: str) -> Domain:
        """Ask the verifier to check the domain now (one verification at a time per domain),
        and wait a bounded time for its answer; `verification_in_progress` if it is late."""
        await self.get(principal, public_id)  # not found for another team's domain
        await self._spend_budget(principal)
        async with self._uow.transaction() as work:
            # The state is checked under the row lock, so a racing DELETE is seen.
            domain = await work.domains.get(public_id, for_update=True)
            if domain is None:
                raise DomainNotFound(public_id)
            _refuse_while_busy(domain, "verify")
            now = datetime.now(UTC)
            if not domain.verification_outstanding(now, self._settings.waits.verify_stale_seconds):
                request = VerifyRequested(
                    correlation_id=request_id,
                    team_id=principal.team_public_id,
                    domain_id=public_id,
                    domain=domain.name,
                    region=domain.region,
                    ses_account=domain.ses_account,
                    records=self.records(domain),
                )
                domain.await_verification(request.event_id, now)
                await work.domains.save(domain)
                await work.emit(request)
        return await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda d: d.verify_requested_at is None,
            self._settings.waits.verify_seconds,
        )

    # --- change --------------------------------------------------------------------------------

    async def change(
        self,
        principal: Principal,
        public_id: str,
        change: ChangeDomain,
        request_id: str,
    ) -> Domain:
        """Upgrade a send-only domain to send and receive (the one change a domain takes):
        it is pending until its MX verifies, and goes live on the mail server now if its
        ownership is proven, else when a verification proves it."""
        _accept_only_mode(change.fields)
        await self.get(principal, public_id)
        await self._spend_budget(principal)
        async with self._uow.transaction() as work:
            domain = await work.domains.get(public_id, for_update=True)
            if domain is None:
                raise DomainNotFound(public_id)
            if change.still is not None and not change.still(domain):
                raise StaleVersion(public_id)
            if domain.mode is DomainMode.SEND_RECEIVE:
                return domain  # already what was asked: nothing to do
            _refuse_while_busy(domain, "change")
            old = domain.status
            move = domain.apply(sm.ReceivingRequested())
            domain.mode = DomainMode.SEND_RECEIVE
            reason = "upgraded to send_receive: the MX must verify"
            await work.domains.note(
                domain,
                happening="receiving_requested",
                status_before=old.value,
                reason=reason,
                request_id=request_id,
            )
            events = _receiving_on_upgrade(domain, request_id)
            if move.changed_status:
                owners = await work.teams.owner_emails(domain.team_pk) if move.notify_owners else []
                why = Why(reason, ChangeReason.RECEIVING_REQUESTED, trigger_of(request_id))
                events.extend(
                    status_changed(
                        domain,
                        old,
                        move,
                        why,
                        records=self._settings.records.rules,
                        owner_emails=owners,
                        correlation_id=request_id,
                        causation_id=None,
                    )
                )
            await work.domains.save(domain)
            await work.emit(*events)
        return await self._load(public_id)

    # --- delete ----------------------------------------------------------------------------------

    async def delete(self, principal: Principal, public_id: str, request_id: str) -> Deletion:
        await self.get(principal, public_id)
        await self._spend_budget(principal)
        async with self._uow.transaction() as work:
            domain = await work.domains.get(public_id, for_update=True)
            if domain is None:
                raise DomainNotFound(public_id)
            await start_deletion(
                work, self._settings, domain, request_id=request_id, reason="deletion requested"
            )
        domain = await self._changes.wait_for(
            public_id,
            lambda: self._load(public_id),
            lambda d: d.status is DomainStatus.DELETED,
            self._settings.waits.create_seconds,
        )
        return Deletion(domain, done=domain.status is DomainStatus.DELETED)


async def ses_account_for(work: Work, settings: ApiSettings, region: str) -> str | None:
    """The SES account a new domain in `region` goes to, for its life: the one with the most
    room (`NoSesCapacity` when every account serving the region is full). None (the default
    account) while no accounts are configured, as before there were any."""
    ses = settings.ses
    usage = usage_of(
        ses.account_list(),
        region,
        await work.domains.identities_by_account(region, ses.default_account),
    )
    account = place(usage, margin=ses.identity_margin)
    if account is None:
        log.warning("ses.capacity_exhausted", region=region, accounts=len(usage))
        raise NoSesCapacity(region)
    return account if ses.accounts else None


async def open_domain(
    work: Work,
    settings: ApiSettings,
    team_pk: int,
    team_public_id: str,
    checked: CheckedDomain,
    *,
    public_id: str,
    request_id: str,
    reason: str,
) -> Domain:
    """Store a new domain (provisioning) and ask the provisioner for it, in `work`.

    Shared by a create and a granted claim, once the name is free (`NameTaken` if not).
    The domain is placed in the SES account with the most room in its region for its life;
    `NoSesCapacity` when every account serving the region is full (nothing is stored).
    """
    account = await ses_account_for(work, settings, checked.region)
    domain = await work.domains.add(
        Domain(
            pk=0,
            public_id=public_id,
            team_pk=team_pk,
            team_public_id=team_public_id,
            name=checked.name,
            status=DomainStatus.PROVISIONING,
            region=checked.region,
            request_id=request_id,
            created_at=datetime.now(UTC),
            external_id=checked.external_id,
            metadata=checked.metadata,
            mail_from_domain=checked.mail_from,
            mode=checked.mode,
            sequence=1,  # domain.created, emitted below
            ses_account=account,
        )
    )
    await work.domains.note(
        domain, happening="requested", status_before=None, reason=reason, request_id=request_id
    )
    await work.emit(
        created(domain, settings.records.rules, request_id),
        DomainRequested(
            correlation_id=request_id,
            team_id=team_public_id,
            domain_id=public_id,
            domain=checked.name,
            region=checked.region,
            mail_from_domain=checked.mail_from,
            mode=checked.mode,
            ses_account=domain.ses_account,
        ),
    )
    return domain


async def start_deletion(
    work: Work,
    settings: ApiSettings,
    domain: Domain,
    *,
    request_id: str,
    reason: str,
    claimed: bool = False,
) -> None:
    """Move a locked domain to `deleting` and ask the provisioner to undo it (or refuse why).

    Shared by a team's DELETE, an operator's release and a granted claim (`claimed`: its
    owners are told why): all keep the same rules, mailboxes first.
    """
    active = await work.domains.active_mailboxes(domain)
    if active:
        raise DomainInUse(domain.name, active)
    old = domain.status
    trigger = trigger_of(request_id)
    code = _deletion_code(trigger, claimed=claimed)
    try:
        move = domain.apply(sm.ClaimedAway() if claimed else sm.DeletionRequested())
    except sm.TransitionRefused:
        raise DomainBusy(
            old, "The domain is still being provisioned; delete it once it is pending."
        ) from None
    if not move.changed_status:
        return  # already deleting: a repeated request joins the first
    # Subscribers (the verifier first: it stops probing) see the move into `deleting`.
    changed = status_changed(
        domain,
        old,
        move,
        Why(reason, code, trigger),
        records=settings.records.rules,
        owner_emails=await work.teams.owner_emails(domain.team_pk) if move.notify_owners else [],
        correlation_id=request_id,
        causation_id=None,
    )
    await work.domains.save(domain)
    await work.domains.note(
        domain,
        happening="claimed" if claimed else "deletion_requested",
        status_before=old.value,
        reason=reason,
        request_id=request_id,
    )
    await work.emit(
        *changed,
        DeletionRequested(
            correlation_id=request_id,
            team_id=domain.team_public_id,
            domain_id=domain.public_id,
            domain=domain.name,
            region=domain.region,
            ses_account=domain.ses_account,
        ),
    )


def _deletion_code(trigger: ChangeTrigger, *, claimed: bool) -> ChangeReason:
    if claimed:
        return ChangeReason.CLAIMED
    if trigger is ChangeTrigger.OPERATOR:
        return ChangeReason.RELEASED_BY_OPERATOR
    return ChangeReason.DELETION_REQUESTED


def _receiving_on_upgrade(domain: Domain, request_id: str) -> list[Event]:
    """Ask for the mail server to accept the upgraded domain's mail now, if it is proven."""
    if not sm.goes_live_on_upgrade(proven=domain.ownership_proven_at is not None):
        return []
    return [
        ReceivingRequested(
            correlation_id=request_id,
            team_id=domain.team_public_id,
            domain_id=domain.public_id,
            domain=domain.name,
            region=domain.region,
        )
    ]


def _refuse_while_busy(domain: Domain, action: str) -> None:
    if domain.status is DomainStatus.PROVISIONING:
        raise DomainBusy(
            domain.status,
            f"The domain is still being provisioned; {action} it once it is pending.",
        )
    if domain.status is DomainStatus.DELETING:
        raise DomainBusy(domain.status, "The domain is being deleted.")


def _accept_only_mode(fields: dict[str, object]) -> None:
    others = sorted(set(fields) - {"mode"})
    if others:
        raise UnsupportedChange(
            others[0], f"Only a domain's mode can be changed; {others[0]!r} cannot."
        )
    if "mode" not in fields:
        raise UnsupportedChange("mode", 'Send the change to make, e.g. {"mode": "send_receive"}.')
    if fields["mode"] != DomainMode.SEND_RECEIVE.value:
        raise UnsupportedChange(
            "mode",
            "A domain can only be upgraded, to 'send_receive'; to stop receiving, delete it "
            "and add it again as send_only.",
        )


def _mode(raw: str | None) -> DomainMode:
    if raw is None:
        return DomainMode.SEND_RECEIVE
    try:
        return DomainMode(raw)
    except ValueError:
        choices = " or ".join(f"'{m.value}'" for m in DomainMode)
        raise InvalidDomainInput(
            "mode_invalid", f"mode must be {choices}, not {raw!r}.", "mode"
        ) from None


def _extras(command: AddDomain) -> tuple[str | None, dict[str, Any]]:
    external_id = command.external_id
    if external_id is not None and not 0 < len(external_id) <= _MAX_EXTERNAL_ID:
        raise InvalidDomainInput(
            "external_id_invalid",
            f"external_id must be 1 to {_MAX_EXTERNAL_ID} characters.",
            "external_id",
        )
    metadata = command.metadata or {}
    if len(msgspec.json.encode(metadata)) > _MAX_METADATA_BYTES:
        raise InvalidDomainInput(
            "metadata_too_large",
            f"metadata must encode to at most {_MAX_METADATA_BYTES} bytes of JSON.",
            "metadata",
        )
    return external_id, metadata
