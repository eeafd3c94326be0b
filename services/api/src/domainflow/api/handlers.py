"""The api's consumers: answers from the provisioner and verifier drive the state machine.

Each handler: claim the event in the inbox, lock the domain, apply what happened to the
entity (the state machine decides), save, note it on the timeline and emit
`DomainStatusChanged` (with the state other services need) through the outbox, all in one
unit of work. Only `entrypoints.py` imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from domainflow.api.domain import state as sm
from domainflow.api.domain import timeline
from domainflow.api.domain.claims import Claim, ClaimVerdict, Holder, claim_verdict, explain
from domainflow.api.domain.errors import NoSesCapacity
from domainflow.api.domain.events import (
    Why,
    checks_failed,
    deleted,
    expiry_notice,
    new_watch_findings,
    newly_expiring,
    status_changed,
    trigger_of,
)
from domainflow.api.domain.model import Domain
from domainflow.api.domains.service import (
    CheckedDomain,
    open_domain,
    ses_account_for,
    start_deletion,
)
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork, Work
from domainflow.contracts import (
    ChangeReason,
    ChangeTrigger,
    CheckOutcome,
    ClaimChecked,
    DomainDeprovisioned,
    DomainMode,
    DomainProvisioned,
    DomainStatus,
    Event,
    ProvisioningRolledBack,
    ReceivingRequested,
    RecordKind,
    SagaNeedsOperator,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from domainflow.kit.ids import new_id
from domainflow.kit.logging import get_logger

log = get_logger(__name__)

CONSUMER = "api"

_VERDICTS: dict[VerificationOutcome, sm.DomainInput] = {
    VerificationOutcome.PASSED: sm.VerificationPassed(),
    VerificationOutcome.FAILED: sm.VerificationFailed(),
    VerificationOutcome.INCONCLUSIVE: sm.VerificationInconclusive(),
}


@dataclass(frozen=True)
class _Happening:
    """What an event means for its domain: the input, why (for the timeline and the public
    events), and what else it records."""

    happened: sm.DomainInput
    why: Why
    record: Callable[[Domain], None] = lambda _: None


class ApiHandlers:
    def __init__(self, uow: UnitOfWork, settings: ApiSettings) -> None:
        self._uow = uow
        self._settings = settings

    async def on_provisioned(self, event: DomainProvisioned) -> None:
        """The mail server and SES hold the domain: it is pending until its DNS checks pass."""

        def record(domain: Domain) -> None:
            domain.dkim_tokens = tuple(event.dkim_tokens)
            domain.mail_from_domain = event.mail_from_domain

        why = Why("provisioned", ChangeReason.PROVISIONED, trigger_of(event.correlation_id))
        await self._apply(event, event.domain_id, _Happening(sm.Provisioned(), why, record))

    async def on_rolled_back(self, event: ProvisioningRolledBack) -> None:
        """Provisioning failed and was undone: the domain is gone and a retry starts clean."""
        cause = f"{event.failed_step}: {event.reason}"

        def record(domain: Domain) -> None:
            domain.failure_reason = cause
            domain.deleted_at = datetime.now(UTC)

        why = Why(
            f"provisioning failed at {event.failed_step}: {event.reason}",
            ChangeReason.PROVISIONING_ROLLED_BACK,
            trigger_of(event.correlation_id),
        )
        await self._apply(
            event, event.domain_id, _Happening(sm.ProvisioningRolledBack(), why, record)
        )

    async def on_needs_operator(self, event: SagaNeedsOperator) -> None:
        """A saga of the domain stopped for an operator: the status stays (the domain is
        stuck where it was), and its timeline says where and why, and how to clear it."""
        async with self._uow.transaction() as work:
            if not await work.first_sight(CONSUMER, event):
                return
            domain = await work.domains.get(event.domain_id, for_update=True, include_deleted=True)
            if domain is None:
                log.warning("domain.unknown", domain_id=event.domain_id)
                return
            log.error(
                "domain.needs_operator",
                domain=domain.name,
                saga=event.saga,
                step=event.step,
                error_class=event.error_class,
            )
            await work.domains.note(
                domain,
                happening="needs_operator",
                status_before=domain.status.value,
                reason=(
                    f"the provisioner stopped ({event.saga}) at {event.step}: "
                    f"{event.error_class}; an operator must mend the cause "
                    "(`domainflow doctor` lists it), then `domainflow domains release` clears "
                    "the domain"
                ),
                request_id=event.correlation_id,
            )

    async def on_verification_completed(self, event: VerificationCompleted) -> None:
        """A probe's verdict: passed, failed or inconclusive (which changes nothing)."""

        def record(domain: Domain) -> None:
            domain.last_checks = tuple(event.checks)
            domain.take_warnings(
                event.warnings, scheduled=event.trigger is VerificationTrigger.SCHEDULED
            )
            domain.last_outcome = event.outcome
            domain.last_checked_at = event.checked_at
            if event.ses_dkim_status is not None:
                domain.ses_dkim_status = event.ses_dkim_status
            if event.ses_identity is not None:  # a complete read; else keep the last one
                domain.note_ses_identity(event.ses_identity)
            if event.outcome == VerificationOutcome.PASSED:
                domain.verified_at = event.checked_at

        why = Why(
            f"verification {event.outcome.value} ({event.trigger.value})",
            ChangeReason.VERIFICATION_PASSED
            if event.outcome == VerificationOutcome.PASSED
            else ChangeReason.VERIFICATION_FAILED,
            ChangeTrigger.SCHEDULE
            if event.trigger == VerificationTrigger.SCHEDULED
            else trigger_of(event.correlation_id),
        )
        await self._apply(event, event.domain_id, _Happening(_VERDICTS[event.outcome], why, record))

    async def on_deprovisioned(self, event: DomainDeprovisioned) -> None:
        """Nothing of the domain is left on SES or the mail server: it is gone."""

        def record(domain: Domain) -> None:
            domain.deleted_at = datetime.now(UTC)

        trigger = trigger_of(event.correlation_id)
        code = (
            ChangeReason.RELEASED_BY_OPERATOR
            if trigger is ChangeTrigger.OPERATOR
            else ChangeReason.DEPROVISIONED
        )
        await self._apply(
            event,
            event.domain_id,
            _Happening(sm.Deprovisioned(), Why("deleted", code, trigger), record),
        )

    async def on_claim_checked(self, event: ClaimChecked) -> None:
        """The DNS answer to a claim: decide it under the holder's row lock and act on it."""
        async with self._uow.transaction() as work:
            if not await work.first_sight(CONSUMER, event):
                return
            claim = await work.claims.get(event.claim_id, for_update=True)
            if claim is None or claim.verdict is not None:
                return
            holder = await work.domains.get(event.domain_id, for_update=True, include_deleted=True)
            current = await work.domains.holding(claim.name)
            mailboxes = 0
            if current is not None and (holder is None or current.public_id != holder.public_id):
                verdict = ClaimVerdict.INCONCLUSIVE  # the name changed hands meanwhile
            else:
                alive = holder is not None and holder.status is not DomainStatus.DELETED
                if holder is not None and alive:
                    mailboxes = await work.domains.active_mailboxes(holder)
                verdict = claim_verdict(
                    Holder(holder.state, holder.ownership_proven_at is not None, mailboxes)
                    if holder is not None and alive
                    else None,
                    claimant_txt=event.claimant.outcome,
                    holder_txt=event.holder.outcome,
                )
                if verdict is ClaimVerdict.GRANTED and not await self._has_room(
                    work, claim, holder if alive else None
                ):
                    verdict = ClaimVerdict.NO_SES_CAPACITY
            claim.verdict = verdict
            claim.reason = explain(verdict, claim.name, active_mailboxes=mailboxes)
            claim.claimant_check = event.claimant.model_dump(mode="json")
            claim.active_mailboxes = mailboxes
            if verdict is ClaimVerdict.GRANTED:
                if holder is not None and holder.status is not DomainStatus.DELETED:
                    await start_deletion(
                        work,
                        self._settings,
                        holder,
                        request_id=event.correlation_id,
                        reason=(
                            f"claimed by another team, which published its ownership TXT for "
                            f"{claim.name} while this team had not proven it (or its TXT was gone)"
                        ),
                        claimed=True,
                    )
                    claim.released_domain_id = holder.public_id
                else:
                    await self._open_claimed(work, claim)
            await work.claims.save(claim)
            log.info("claim.decided", claim_id=claim.public_id, verdict=claim.verdict.value)

    async def _hand_over(self, work: Work, released: Domain) -> None:
        """A domain released for a granted claim is gone: the claimant's takes the name."""
        claim = await work.claims.awaiting(released.public_id)
        if claim is not None:
            await self._open_claimed(work, claim)
            await work.claims.save(claim)

    async def _has_room(self, work: Work, claim: Claim, holder: Domain | None) -> bool:
        """Whether the claimant's domain can be placed in an SES account: checked before the
        holder's domain is released, so a claim that could not be completed takes nothing
        from anyone. A holder in the same region frees, by its release, the room it needs."""
        region = str(claim.request["region"])
        if holder is not None and holder.region == region:
            return True
        try:
            await ses_account_for(work, self._settings, region)
        except NoSesCapacity:
            return False
        return True

    async def _open_claimed(self, work: Work, claim: Claim) -> None:
        request = dict(claim.request)
        checked = CheckedDomain(
            name=str(request["name"]),
            region=str(request["region"]),
            mail_from=str(request["mail_from"]),
            mode=DomainMode(str(request["mode"])),
            external_id=None if request.get("external_id") is None else str(request["external_id"]),
            metadata=dict(request.get("metadata") or {}),  # type: ignore[call-overload]
        )
        try:
            domain = await open_domain(
                work,
                self._settings,
                claim.team_pk,
                claim.team_public_id,
                checked,
                public_id=new_id("mdom"),
                request_id=claim.request_id,
                reason=f"added in {checked.region}",
            )
        except NoSesCapacity:
            # Refused like a create would be, in the claim's words: redelivering the answer
            # would fail the same way until the event is parked, the claim left unanswered.
            claim.verdict = ClaimVerdict.NO_SES_CAPACITY
            claim.reason = explain(ClaimVerdict.NO_SES_CAPACITY, claim.name)
            return
        await work.domains.note(
            domain,
            happening="claimed",
            status_before=None,
            reason=f"claimed ({claim.public_id}): this team's ownership TXT is published",
            request_id=claim.request_id,
        )
        claim.domain_public_id = domain.public_id

    async def _apply(self, event: Event, domain_id: str, what: _Happening) -> None:
        """Claim, load, transition, save, note, emit: the shape every answer takes.

        A verification's answer releases the request waiting on it in the same unit of work,
        so that request never reads a half-applied result.
        """
        async with self._uow.transaction() as work:
            if not await work.first_sight(CONSUMER, event):
                return  # redelivered: already applied
            domain = await work.domains.get(domain_id, for_update=True, include_deleted=True)
            if domain is None:
                log.warning("domain.unknown", domain_id=domain_id)
                return
            before = _snapshot(domain)
            if isinstance(event, VerificationCompleted):
                domain.answer_verification(event.causation_id)
            try:
                move = domain.apply(what.happened)
            except sm.TransitionRefused as refused:
                log.info("domain.transition_refused", status=before.status, reason=str(refused))
                await work.domains.save(domain)  # the released verify request, if any
                return
            what.record(domain)
            events = await self._events(work, event, before, domain, move, what.why)
            events += await self._expiry_notices(work, event, before, domain)
            live = _ownership(event, before, domain)
            await work.domains.save(domain)  # with the sequence its public events took
            await work.emit(*events, *live)
            await self._note(work, event, before, domain, move, what.why.reason)
            for finding in new_watch_findings(before.last_warnings, domain.last_warnings):
                await work.domains.note(
                    domain,
                    happening="registration_watch",
                    status_before=domain.status.value,
                    reason=finding.message,
                    request_id=event.correlation_id,
                )
            if domain.status is DomainStatus.DELETED:
                await self._hand_over(work, domain)
            if live:
                await work.domains.note(
                    domain,
                    happening="ownership_proven",
                    status_before=domain.status.value,
                    reason="the ownership TXT was seen: the mail server now accepts its mail",
                    request_id=event.correlation_id,
                )

    async def _events(
        self,
        work: Work,
        event: Event,
        before: Domain,
        domain: Domain,
        move: sm.Transition,
        why: Why,
    ) -> list[Event]:
        events: list[Event] = []
        if move.changed_status:
            checks = list(event.checks) if isinstance(event, VerificationCompleted) else None
            if why.code is ChangeReason.VERIFICATION_FAILED and (
                before.status is DomainStatus.VERIFIED or domain.status is DomainStatus.FAILED
            ):
                why = replace(why, code=ChangeReason.RECORDS_BROKE)  # it had worked
            owners = await work.teams.owner_emails(domain.team_pk) if move.notify_owners else []
            events.extend(
                status_changed(
                    domain,
                    before.status,
                    move,
                    why,
                    records=self._settings.records.rules,
                    owner_emails=owners,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                    checks=checks,
                )
            )
            log.info("domain.status_changed", old=before.status.value, new=domain.status.value)
        elif _failing_anew(event, before, domain):
            # A status change already says so; without one, a subscriber would never hear
            # that a pending domain's records are still (or newly) wrong.
            events.append(
                checks_failed(
                    domain,
                    why.trigger,
                    self._settings.records.rules,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                )
            )
        if domain.status is DomainStatus.DELETED:
            # Gone from every system: after a deletion, and after a rolled-back provisioning.
            events.append(
                deleted(
                    domain,
                    why,
                    self._settings.records.rules,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                )
            )
        return events

    @staticmethod
    async def _expiry_notices(
        work: Work, event: Event, before: Domain, domain: Domain
    ) -> list[Event]:
        """Owners hear of a registration ending soon once per expiry date, whether or not
        the status moved: the watch reports it on every scheduled verification."""
        if not isinstance(event, VerificationCompleted) or domain.status is DomainStatus.DELETED:
            return []
        fresh = newly_expiring(before.last_warnings, domain.last_warnings)
        owners = await work.teams.owner_emails(domain.team_pk) if fresh else []
        return [
            expiry_notice(
                domain,
                ends,
                warning,
                owners,
                correlation_id=event.correlation_id,
                causation_id=event.event_id,
            )
            for ends, warning in fresh
            if owners
        ]

    @staticmethod
    async def _note(
        work: Work,
        event: Event,
        before: Domain,
        after: Domain,
        move: sm.Transition,
        reason: str,
    ) -> None:
        """A line on the domain's timeline, when the event changed something to tell."""
        probe = event if isinstance(event, VerificationCompleted) else None
        if not timeline.worth_noting(
            changed_status=move.changed_status,
            asked_for=probe is not None and probe.trigger == VerificationTrigger.MANUAL,
            outcome=after.last_outcome,
            previous_outcome=before.last_outcome,
            failing=after.failing(),
            previous_failing=before.failing(),
        ):
            return
        await work.domains.note(
            after,
            happening=event.TYPE.removeprefix("domain."),
            status_before=before.status.value,
            reason=reason,
            request_id=event.correlation_id,
            outcome=probe.outcome.value if probe else None,
            ses_dkim_status=probe.ses_dkim_status.value
            if probe and probe.ses_dkim_status
            else None,
            checks=[
                c.model_dump(mode="json") for c in after.last_checks or () if c.outcome != "pass"
            ]
            if probe
            else None,
        )


def _failing_anew(event: Event, before: Domain, after: Domain) -> bool:
    """A failed verification whose failing (record, reason) pairs differ from the last
    probe's: the same failures every six hours are not news, a new one is."""
    return (
        isinstance(event, VerificationCompleted)
        and event.outcome is VerificationOutcome.FAILED
        and after.failing() != before.failing()
    )


def _ownership(event: Event, before: Domain, domain: Domain) -> list[Event]:
    """Record a first sight of the ownership TXT, and ask the provisioner to put the domain
    live on the mail server when the state machine says it goes live now."""
    if not isinstance(event, VerificationCompleted):
        return []
    seen = sm.ownership_seen(
        before.status,
        proven=before.ownership_proven_at is not None,
        receives=domain.mode is DomainMode.SEND_RECEIVE,
        txt_passed=any(
            c.record == RecordKind.VERIFICATION_TXT and c.outcome == CheckOutcome.PASS
            for c in event.checks
        ),
    )
    if seen.proven and domain.ownership_proven_at is None:
        domain.ownership_proven_at = event.checked_at
    if not seen.goes_live:
        return []
    return [
        ReceivingRequested(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            team_id=domain.team_public_id,
            domain_id=domain.public_id,
            domain=domain.name,
            region=domain.region,
        )
    ]


def _snapshot(domain: Domain) -> Domain:
    """The domain as it stood before the event (the entity is changed in place)."""
    return replace(domain)
