"""Request and response shapes of the REST contract (API.md), as typed structs."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class Meta(msgspec.Struct):
    request_id: str


class Envelope(msgspec.Struct, Generic[T]):
    ok: bool
    data: T
    meta: Meta


class CreateDomain(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /domains` body. Only `domain` is required."""

    domain: Any = None  # checked by hand so each mistake gets its own reason
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
    mail_from: MailFromView | None = None


class RecordCheckView(msgspec.Struct):
    record: str
    outcome: str
    ok: bool
    name: str
    expected: str
    found: list[str]
    reason: str | None
    message: str


class DomainView(msgspec.Struct):
    id: str
    domain: str
    verification_status: str
    state: str
    ses_dkim_status: str
    verified_at: str | None
    created_at: str
    last_checked_at: str | None
    verification_in_progress: bool
    region: str
    external_id: str | None
    metadata: dict[str, Any]
    mail_from_domain: str | None
    dns_records: DnsRecordsView | None
    last_checks: list[RecordCheckView] | None = None
    display_domain: str | None = None


class DomainPage(msgspec.Struct):
    items: list[DomainView]
    next_cursor: str | None
    has_more: bool


class ChecksView(msgspec.Struct):
    mx: bool
    verification_txt: bool
    spf: bool
    dmarc: bool


class VerificationView(msgspec.Struct):
    status: str
    ses_dkim_status: str
    checks: ChecksView
    outcome: str | None
    verification_in_progress: bool
    details: list[RecordCheckView]
    last_checked_at: str | None


class DeletionView(msgspec.Struct):
    id: str
    domain: str
    state: str
    deleted: bool
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
