"""Domain rows as the REST contract shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domainflow.api.adapters.repository import DomainRow, TimelineEntry
from domainflow.api.domain.names import display_name
from domainflow.api.domain.state import public_status
from domainflow.api.handlers import records_of
from domainflow.api.schemas import (
    ChecksView,
    DnsRecordsView,
    DomainView,
    MailFromView,
    MxView,
    RecordCheckView,
    RecordView,
    TimelineEntryView,
    VerificationView,
)
from domainflow.api.settings import ApiSettings
from domainflow.contracts import DnsRecords, DomainStatus


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def records_view(records: DnsRecords) -> DnsRecordsView:
    mail_from = None
    if records.mail_from is not None:
        mf = records.mail_from
        mail_from = MailFromView(
            mx=MxView(priority=mf.mx.priority, target=mf.mx.target, name=mf.mx.name),
            spf=RecordView(name=mf.spf.name, value=mf.spf.value),
        )
    return DnsRecordsView(
        mx=[MxView(priority=m.priority, target=m.target, name=m.name) for m in records.mx],
        spf=RecordView(name=records.spf.name, value=records.spf.value),
        dmarc=RecordView(name=records.dmarc.name, value=records.dmarc.value),
        dkim=[RecordView(name=d.name, value=d.value) for d in records.dkim],
        verification=RecordView(name=records.verification.name, value=records.verification.value),
        mail_from=mail_from,
    )


def check_views(raw: list[dict[str, Any]] | None) -> list[RecordCheckView] | None:
    if raw is None:
        return None
    return [
        RecordCheckView(
            record=c["record"],
            outcome=c["outcome"],
            ok=c["outcome"] == "pass",
            name=c.get("name", ""),
            expected=c.get("expected", ""),
            found=list(c.get("found", [])),
            reason=c.get("reason"),
            message=c.get("message", ""),
        )
        for c in raw
    ]


def verification_in_progress(row: DomainRow) -> bool:
    return row.status == DomainStatus.PROVISIONING.value or row.verify_requested_at is not None


def domain_view(row: DomainRow, settings: ApiSettings) -> DomainView:
    shown = display_name(row.domain)
    return DomainView(
        id=row.public_id,
        domain=row.domain,
        verification_status=public_status(DomainStatus(row.status)),
        state=row.status,
        ses_dkim_status=row.ses_dkim_status,
        verified_at=iso(row.verified_at),
        created_at=iso(row.created_at) or "",
        last_checked_at=iso(row.last_checked_at),
        verification_in_progress=verification_in_progress(row),
        region=row.region,
        external_id=row.external_id,
        metadata=row.metadata,
        mail_from_domain=row.mail_from_domain,
        dns_records=records_view(records_of(row, settings)),
        last_checks=check_views(row.last_checks),
        display_domain=shown if shown != row.domain else None,
    )


def verification_view(row: DomainRow) -> VerificationView:
    details = check_views(row.last_checks) or []
    passed = {d.record: d.ok for d in details}
    return VerificationView(
        status=public_status(DomainStatus(row.status)),
        ses_dkim_status=row.ses_dkim_status,
        checks=ChecksView(
            mx=passed.get("mx", False),
            verification_txt=passed.get("verification_txt", False),
            spf=passed.get("spf", False),
            dmarc=passed.get("dmarc", False),
        ),
        outcome=row.last_outcome,
        verification_in_progress=verification_in_progress(row),
        details=details,
        last_checked_at=iso(row.last_checked_at),
    )


def timeline_view(entry: TimelineEntry) -> TimelineEntryView:
    at = iso(entry.at)
    assert at is not None
    return TimelineEntryView(
        at=at,
        happening=entry.happening,
        status_before=entry.status_before,
        status_after=entry.status_after,
        reason=entry.reason,
        outcome=entry.outcome,
        ses_dkim_status=entry.ses_dkim_status,
        failing_checks=check_views(entry.checks),
        request_id=entry.request_id,
    )
