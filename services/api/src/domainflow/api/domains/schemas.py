"""The domains resource's shapes: the request it takes and the views it answers with.

Request and response shapes are typed structs (API.md); the `*_view` functions turn the
entity and the use cases' results into them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal, cast

import msgspec

from domainflow.api.domain.model import Domain
from domainflow.api.domain.names import display_name
from domainflow.api.domain.state import public_status
from domainflow.api.domains.repository import TimelineEntry
from domainflow.contracts import DnsRecords, DomainMode, DomainStatus, RecordCheck

DOMAIN_PATTERN = (
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?|xn--[a-z0-9-]{1,59})$"
)

Mode = Literal["send_only", "send_receive"]
PublicStatus = Literal["pending", "verified", "failed"]
State = Literal["provisioning", "pending", "verified", "failed", "deleting"]
SesStatus = Literal["pending", "success", "failed", "temporary_failure", "not_started"]


class CreateDomain(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /domains` body. Only `domain` is required."""

    domain: Any = None  # checked by hand so each mistake gets its own reason
    mode: str | None = None
    region: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    mail_from: str | None = None


class MxView(msgspec.Struct):
    priority: int
    target: str
    name: str


class RecordView(msgspec.Struct):
    name: str
    value: str


class MailFromView(msgspec.Struct):
    mx: MxView
    spf: RecordView


class DnsRecordsView(msgspec.Struct):
    mx: list[MxView]
    spf: RecordView
    dmarc: RecordView
    dkim: list[RecordView]
    verification: RecordView
    mail_from: MailFromView


class RecordCheckView(msgspec.Struct):
    record: str
    outcome: Literal["pass", "fail", "inconclusive"]
    ok: bool
    name: str
    expected: str
    found: list[str]
    reason: str | None
    message: str
    #: The facts behind the reason (`merged_record`, `lookup_costs`, `ttl_left`, ...).
    details: dict[str, Any]


class WarningView(msgspec.Struct):
    """Something already published that will conflict with the records (never a refusal)."""

    code: str
    name: str
    found: list[str]
    message: str


class DomainView(msgspec.Struct):
    """A domain as Sendmux's Management API shows it; ours follow from `state` on."""

    id: str
    domain: str
    mode: Mode
    verification_status: PublicStatus
    created_at: str
    verified_at: str | None
    mailbox_count: int
    ses_dkim_status: SesStatus
    ses_dkim_signing_enabled: bool | None
    ses_identity_verification_status: str | None
    ses_mail_from_status: SesStatus | None
    ses_verified_for_sending: bool | None
    ses_identity_checked_at: str | None
    dns_records: DnsRecordsView
    state: State
    last_checked_at: str | None
    verification_in_progress: bool
    region: str
    external_id: str | None
    metadata: dict[str, Any]
    mail_from_domain: str | None
    last_checks: list[RecordCheckView] | None
    display_domain: str | None
    #: The last verification's warnings.
    warnings: list[WarningView]


class ChecksView(msgspec.Struct):
    mx: bool
    verification_txt: bool
    spf: bool
    dmarc: bool
    mail_from_mx: bool
    mail_from_spf: bool


class VerificationView(msgspec.Struct):
    status: PublicStatus
    checks: ChecksView
    ses_dkim_status: SesStatus
    ses_dkim_signing_enabled: bool | None
    ses_identity_verification_status: str | None
    ses_mail_from_status: SesStatus | None
    ses_verified_for_sending: bool | None
    ses_identity_checked_at: str | None
    details: list[RecordCheckView]
    outcome: Literal["passed", "failed", "inconclusive"] | None
    verification_in_progress: bool
    last_checked_at: str | None
    warnings: list[WarningView]


class DeletionView(msgspec.Struct):
    id: str
    deleted: bool
    domain: str
    state: Literal["deleting", "deleted"]
    dns_cleanup: str


class TimelineEntryView(msgspec.Struct):
    at: str
    happening: str  # requested, provisioned, verification_completed, deletion_requested, ...
    status_before: str | None
    status_after: str
    reason: str
    outcome: str | None  # a probe's verdict
    ses_dkim_status: str | None
    failing_checks: list[RecordCheckView] | None  # what did not pass, with expected and found
    request_id: str  # the request (or scheduled cycle) that caused it: grep the logs with it


class TimelinePage(msgspec.Struct):
    items: list[TimelineEntryView]
    next_cursor: str | None
    has_more: bool


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def records_view(records: DnsRecords) -> DnsRecordsView:
    mf = records.mail_from
    assert mf is not None, "every domain has a MAIL FROM (records_for fills in the default)"
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


def check_view(c: RecordCheck) -> RecordCheckView:
    return RecordCheckView(
        record=c.record.value,
        outcome=c.outcome.value,
        ok=c.outcome.value == "pass",
        name=c.name,
        expected=c.expected,
        found=list(c.found),
        reason=c.reason,
        message=c.message,
        details=dict(c.details),
    )


def warning_views(domain: Domain) -> list[WarningView]:
    return [
        WarningView(code=w.code, name=w.name, found=list(w.found), message=w.message)
        for w in domain.last_warnings
    ]


def raw_check_views(raw: list[dict[str, Any]] | None) -> list[RecordCheckView] | None:
    """Checks as a timeline line stored them (what did not pass, as the probe saw it)."""
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
            details=dict(c.get("details") or {}),
        )
        for c in raw
    ]


def _ses(domain: Domain) -> dict[str, Any]:
    return {
        "ses_dkim_status": domain.ses_dkim_status.value,
        "ses_dkim_signing_enabled": domain.ses_dkim_signing_enabled,
        "ses_identity_verification_status": domain.ses_identity_verification_status,
        "ses_mail_from_status": domain.ses_mail_from_status.value
        if domain.ses_mail_from_status
        else None,
        "ses_verified_for_sending": domain.ses_verified_for_sending,
        "ses_identity_checked_at": iso(domain.ses_identity_checked_at),
    }


def domain_view(domain: Domain, records: DnsRecords) -> DomainView:
    shown = display_name(domain.name)
    checks = domain.last_checks
    return DomainView(
        id=domain.public_id,
        domain=domain.name,
        mode=domain.mode.value,
        verification_status=public_status(domain.status),
        created_at=iso(domain.created_at) or "",
        verified_at=iso(domain.verified_at),
        mailbox_count=domain.mailbox_count,
        **_ses(domain),
        dns_records=records_view(records),
        state=cast(State, domain.status.value),
        last_checked_at=iso(domain.last_checked_at),
        verification_in_progress=domain.verification_in_progress,
        region=domain.region,
        external_id=domain.external_id,
        metadata=domain.metadata,
        mail_from_domain=domain.mail_from_domain,
        last_checks=None if checks is None else [check_view(c) for c in checks],
        display_domain=shown if shown != domain.name else None,
        warnings=warning_views(domain),
    )


def verification_view(domain: Domain) -> VerificationView:
    details = [check_view(c) for c in domain.last_checks or ()]
    passed = {d.record: d.ok for d in details}
    send_only = domain.mode is DomainMode.SEND_ONLY
    return VerificationView(
        status=public_status(domain.status),
        checks=ChecksView(
            # A send-only domain receives nothing: its MX is not asked for, so not failing.
            mx=send_only or passed.get("mx", False),
            verification_txt=passed.get("verification_txt", False),
            spf=passed.get("spf", False),
            dmarc=passed.get("dmarc", False),
            mail_from_mx=passed.get("mail_from_mx", False),
            mail_from_spf=passed.get("mail_from_spf", False),
        ),
        **_ses(domain),
        details=details,
        outcome=domain.last_outcome.value if domain.last_outcome else None,
        verification_in_progress=domain.verification_in_progress,
        last_checked_at=iso(domain.last_checked_at),
        warnings=warning_views(domain),
    )


def etag_of(view: DomainView) -> str:
    """A weak validator of the domain as GET shows it: it changes exactly when the
    representation does (a write of the row, a mailbox more or less, new operator records)."""
    return etag_of_encoded(msgspec.json.encode(view))


def etag_of_encoded(view: bytes) -> str:
    """`etag_of` for a view already encoded: the bytes the answer carries."""
    return f'W/"{hashlib.sha256(view).hexdigest()[:20]}"'


def deletion_view(domain: Domain) -> DeletionView:
    return DeletionView(
        id=domain.public_id,
        deleted=True,
        domain=domain.name,
        state="deleted" if domain.status is DomainStatus.DELETED else "deleting",
        dns_cleanup=(
            "The domain is removed from the mail server and Amazon SES. The DNS "
            "records in your zone are yours to remove at your DNS provider."
        ),
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
        failing_checks=raw_check_views(entry.checks),
        request_id=entry.request_id,
    )
