"""The events a domain's moves publish, built from the entity (pure: no I/O)."""

from __future__ import annotations

import uuid
from functools import lru_cache

from domainflow.api.domain import state as sm
from domainflow.api.domain.model import Domain
from domainflow.api.domain.records import RecordSettings, derive_records
from domainflow.contracts import (
    DnsRecords,
    DomainMode,
    DomainStatus,
    DomainStatusChanged,
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


def status_changed(
    domain: Domain,
    old: DomainStatus | None,
    move: sm.Transition,
    reason: str,
    *,
    records: RecordSettings,
    owner_emails: list[str],
    correlation_id: str,
    causation_id: uuid.UUID | None,
    checks: list[RecordCheck] | None = None,
) -> DomainStatusChanged:
    """The event every status move publishes, with the state other services act on."""
    new = move.new_state.status
    return DomainStatusChanged(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=domain.team_public_id,
        domain_id=domain.public_id,
        domain=domain.name,
        region=domain.region,
        old_status=old,
        new_status=new,
        reason=reason,
        consecutive_failures=move.new_state.consecutive_failures,
        notify_owners=move.notify_owners,
        records=records_for(domain, records) if new != DomainStatus.DELETED else None,
        checks=checks or [],
        ses_dkim_status=domain.ses_dkim_status,
        owner_emails=owner_emails,
    )
