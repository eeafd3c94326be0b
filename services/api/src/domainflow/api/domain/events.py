"""The events a domain's moves publish, built from the entity (pure: no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from domainflow.api.domain import state as sm
from domainflow.api.domain.model import WATCH_WARNINGS, Domain
from domainflow.api.domain.records import RecordSettings, derive_records
from domainflow.api.domain.state import public_status
from domainflow.contracts import (
    ChangeReason,
    ChangeTrigger,
    CheckOutcome,
    DnsRecords,
    DnsWarning,
    DomainChecksFailed,
    DomainCreated,
    DomainDeleted,
    DomainMode,
    DomainSnapshot,
    DomainStatus,
    DomainStatusChanged,
    DomainStatusChangedV1,
    Event,
    NotificationRequested,
    RecordCheck,
)


def records_for(domain: Domain, settings: RecordSettings) -> DnsRecords:
    """The records the customer places for this domain (a send-only domain has no MX: it
    receives no mail, and an MX pointing at us would route mail nobody reads)."""
    return _records(
        domain.name,
        domain.team_public_id,
        domain.dkim_tokens,
        domain.region,
        settings,
        # Domains added before every domain got one show the default it would have.
        domain.mail_from_domain or f"{settings.mail_from_label}.{domain.name}",
        receives=domain.mode is DomainMode.SEND_RECEIVE,
    )


@lru_cache(maxsize=4096)
def _records(
    name: str,
    team_public_id: str,
    dkim_tokens: tuple[str, ...],
    region: str,
    settings: RecordSettings,
    mail_from_domain: str | None,
    *,
    receives: bool,
) -> DnsRecords:
    # Every read of a domain shows its records, and they change only with these inputs:
    # derived once per domain and shared (DnsRecords is frozen), not on every request.
    records = derive_records(
        name, team_public_id, dkim_tokens, region, settings, mail_from_domain=mail_from_domain
    )
    return records if receives else records.model_copy(update={"mx": []})


@dataclass(frozen=True)
class Why:
    """Why a domain changed, for its public events: a sentence, a code and what set it off."""

    reason: str
    code: ChangeReason
    trigger: ChangeTrigger


def trigger_of(correlation_id: str) -> ChangeTrigger:
    """A request's trigger: an operator's CLI stamps its requests `op_…` (domains/operators.py)."""
    return ChangeTrigger.OPERATOR if correlation_id.startswith("op_") else ChangeTrigger.REQUEST


def snapshot(domain: Domain, settings: RecordSettings) -> DomainSnapshot:
    """The domain as the REST API shows it, minus personal data (public events carry it)."""
    gone = domain.status is DomainStatus.DELETED
    return DomainSnapshot(
        id=domain.public_id,
        domain=domain.name,
        state=domain.status,
        verification_status="pending" if gone else public_status(domain.status),
        region=domain.region,
        external_id=domain.external_id,
        metadata=domain.metadata,
        mode=domain.mode,
        mail_from_domain=domain.mail_from_domain,
        ses_dkim_status=domain.ses_dkim_status,
        dns_records=None if gone else records_for(domain, settings),
        last_checks=list(domain.last_checks or ()),
        created_at=domain.created_at,
        verified_at=domain.verified_at,
        last_checked_at=domain.last_checked_at,
    )


def created(domain: Domain, settings: RecordSettings, correlation_id: str) -> DomainCreated:
    """The first public event of a domain: it is stored with sequence 1 for this."""
    assert domain.sequence == 1, "a domain is added with the number of its domain.created"
    return DomainCreated(
        correlation_id=correlation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        sequence=domain.sequence,
        trigger=trigger_of(correlation_id),
        snapshot=snapshot(domain, settings),
    )


def deleted(
    domain: Domain,
    why: Why,
    settings: RecordSettings,
    *,
    correlation_id: str,
    causation_id: uuid.UUID | None,
) -> DomainDeleted:
    return DomainDeleted(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        sequence=domain.next_sequence(),
        reason_code=why.code,
        reason=why.reason,
        trigger=why.trigger,
        snapshot=snapshot(domain, settings),
    )


def status_changed(
    domain: Domain,
    old: DomainStatus | None,
    move: sm.Transition,
    why: Why,
    *,
    records: RecordSettings,
    owner_emails: list[str],
    correlation_id: str,
    causation_id: uuid.UUID | None,
    checks: list[RecordCheck] | None = None,
) -> list[Event]:
    """The events a status move publishes: `domain.status_changed` (version 2, and version 1
    beside it for one release, both with the move's one sequence number), and, when the
    state machine says owners hear of it, the notifier's internal `notification.requested`
    (the only one carrying their addresses)."""
    new = move.new_state.status
    changed = DomainStatusChanged(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        region=domain.region,
        ses_account=domain.ses_account,
        old_status=old,
        new_status=new,
        reason=why.reason,
        consecutive_failures=move.new_state.consecutive_failures,
        records=records_for(domain, records) if new != DomainStatus.DELETED else None,
        checks=checks or [],
        ses_dkim_status=domain.ses_dkim_status,
        sequence=domain.next_sequence(),
        reason_code=why.code,
        trigger=why.trigger,
        snapshot=snapshot(domain, records),
    )
    published: list[Event] = [
        changed,
        DomainStatusChangedV1.beside(changed, notify_owners=move.notify_owners),
    ]
    if move.notify_owners and owner_emails:
        published.append(owners_notice(changed, owner_emails))
    return published


def owners_notice(changed: DomainStatusChanged, owner_emails: list[str]) -> NotificationRequested:
    """Ask the notifier to email these owners about a change (internal: their addresses go
    to no subscriber)."""
    return NotificationRequested(
        correlation_id=changed.correlation_id,
        causation_id=changed.event_id,
        team_id=changed.team_id,
        domain_id=changed.domain_id,
        domain=changed.domain,
        region=changed.region,
        transition_event_id=changed.event_id,
        old_status=changed.old_status,
        new_status=changed.new_status,
        reason=changed.reason,
        reason_code=changed.reason_code,
        checks=changed.checks,
        ses_dkim_status=changed.ses_dkim_status,
        owner_emails=owner_emails,
    )


#: Namespace of the ids an expiry notice is deduplicated with (uuid5 of domain and date).
_EXPIRY_NOTICES = uuid.UUID("6f1d3c1e-8a53-5b0e-9d7a-3f2b1c0e4a77")


def registration_expiries(
    warnings: Iterable[DnsWarning],
) -> dict[date, tuple[datetime, DnsWarning]]:
    """The registration ends the watch reported (`registration_expiring`), by expiry date."""
    found: dict[date, tuple[datetime, DnsWarning]] = {}
    for warning in warnings:
        if warning.code != "registration_expiring" or not warning.found:
            continue
        try:
            ends = datetime.fromisoformat(warning.found[0])
        except ValueError:
            continue  # not the watch's own words: nothing to date a notice by
        found[ends.date()] = (ends, warning)
    return found


def new_watch_findings(
    before: Iterable[DnsWarning], after: Iterable[DnsWarning]
) -> list[DnsWarning]:
    """What the registration and delegation watch reports now and did not before (nameservers
    moved, a registration about to lapse): each goes on the timeline once, not every pass."""
    known = {(w.code, w.name, tuple(w.found)) for w in before if w.code in WATCH_WARNINGS}
    return [
        w
        for w in after
        if w.code in WATCH_WARNINGS and (w.code, w.name, tuple(w.found)) not in known
    ]


def newly_expiring(
    before: Iterable[DnsWarning], after: Iterable[DnsWarning]
) -> list[tuple[datetime, DnsWarning]]:
    """The expiry dates `after` carries and `before` did not: each is told once (a renewal
    to a later date that comes close again is news; the same date every six hours is not)."""
    known = registration_expiries(before)
    return [
        found for day, found in sorted(registration_expiries(after).items()) if day not in known
    ]


def expiry_notice(
    domain: Domain,
    ends: datetime,
    warning: DnsWarning,
    owner_emails: list[str],
    *,
    correlation_id: str,
    causation_id: uuid.UUID | None,
) -> NotificationRequested:
    """Ask the notifier to tell the owners that the registration ends on `ends`. The status
    does not move, so the mail's id is derived from the domain and the date: a redelivered
    event, or the same date reported again after a gap, never mails twice (the notifier's
    log keys on it)."""
    return NotificationRequested(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        region=domain.region,
        transition_event_id=uuid.uuid5(
            _EXPIRY_NOTICES, f"{domain.public_id}/{ends.date().isoformat()}"
        ),
        old_status=domain.status,
        new_status=domain.status,
        reason=warning.message,
        reason_code=ChangeReason.REGISTRATION_EXPIRING,
        owner_emails=owner_emails,
        registration_expires_at=ends,
    )


def checks_failed(
    domain: Domain,
    trigger: ChangeTrigger,
    settings: RecordSettings,
    *,
    correlation_id: str,
    causation_id: uuid.UUID | None,
) -> DomainChecksFailed:
    """A failed verification that left the status as it was (the caller decides whether
    its failing checks differ from the last ones: only then is it worth publishing)."""
    assert domain.last_checked_at is not None, "a verification's answer was recorded"
    return DomainChecksFailed(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        status=domain.status,
        sequence=domain.next_sequence(),
        trigger=trigger,
        failing_checks=[c for c in domain.last_checks or () if c.outcome is not CheckOutcome.PASS],
        ses_dkim_status=domain.ses_dkim_status,
        checked_at=domain.last_checked_at,
        snapshot=snapshot(domain, settings),
    )
