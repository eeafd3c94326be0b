"""Every event of the design, each a versioned, typed model inside one envelope.

The envelope fields (`event_id`, `type`, `version`, `occurred_at`, `correlation_id`,
`causation_id`, `team_id`) travel flat beside the payload so that a subscriber in any
language reads one JSON object. `type` doubles as the routing key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue


def _now() -> datetime:
    return datetime.now(UTC)


class DomainStatus(StrEnum):
    """The domain's place in the state machine owned by the api."""

    PROVISIONING = "provisioning"
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class DomainMode(StrEnum):
    """What a domain is for: sending only, or sending and receiving (the mail server's row)."""

    SEND_ONLY = "send_only"
    SEND_RECEIVE = "send_receive"


class DkimStatus(StrEnum):
    """SES's DKIM status in the seed's lower-case form; SES's identity verification and
    MAIL FROM statuses use the same words, and so the same values."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    TEMPORARY_FAILURE = "temporary_failure"
    NOT_STARTED = "not_started"


class RecordKind(StrEnum):
    """The four records checked over DNS-over-HTTPS (DKIM is SES's to judge).

    `dkim` appears only while SES says DKIM is not yet `success`: the three CNAMEs as DNS
    shows them, to say why. It never decides the outcome; SES does. `mail_from_mx` and
    `mail_from_spf` check the custom MAIL FROM subdomain's records: reported, not required.
    A send-only domain has no `mx` check (it receives nothing).
    """

    MX = "mx"
    VERIFICATION_TXT = "verification_txt"
    SPF = "spf"
    DMARC = "dmarc"
    DKIM = "dkim"
    MAIL_FROM_MX = "mail_from_mx"
    MAIL_FROM_SPF = "mail_from_spf"


class CheckOutcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class VerificationOutcome(StrEnum):
    """The whole probe: passed only if every check passed and SES says DKIM success."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


class VerificationTrigger(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class ChangeTrigger(StrEnum):
    """What set a public change in motion: a customer's request, the re-verification
    schedule, or an operator (the CLI)."""

    REQUEST = "request"
    SCHEDULE = "schedule"
    OPERATOR = "operator"


class ChangeReason(StrEnum):
    """Why a domain changed, as a code a subscriber can switch on (the `reason` beside it
    is the sentence a person reads)."""

    CREATED = "created"
    PROVISIONED = "provisioned"
    PROVISIONING_ROLLED_BACK = "provisioning_rolled_back"
    VERIFICATION_PASSED = "verification_passed"
    VERIFICATION_FAILED = "verification_failed"
    RECORDS_BROKE = "records_broke"
    DELETION_REQUESTED = "deletion_requested"
    DEPROVISIONED = "deprovisioned"
    RELEASED_BY_OPERATOR = "released_by_operator"
    RECEIVING_REQUESTED = "receiving_requested"
    #: Another team showed the name is theirs (its ownership TXT) and claimed it.
    CLAIMED = "claimed"
    #: The zone's registration ends soon (the registration watch's RDAP look); the status
    #: stays what it was. Only on `notification.requested`: owners are mailed once per date.
    REGISTRATION_EXPIRING = "registration_expiring"


class _Frozen(BaseModel):
    # Tolerant reader: a field a newer writer added is ignored, never refused (writers are
    # held to the declared fields by mypy's pydantic plugin, `init_forbid_extra`).
    model_config = ConfigDict(
        frozen=True, extra="ignore", json_schema_serialization_defaults_required=True
    )


class MxRecord(_Frozen):
    name: str
    priority: int
    target: str


class NamedRecord(_Frozen):
    """A TXT record: SPF, DMARC, ownership, or the MAIL FROM SPF."""

    name: str
    value: str


class DkimRecord(_Frozen):
    """One of SES's three Easy DKIM CNAMEs."""

    name: str
    value: str


class MailFromRecords(_Frozen):
    """The records a custom MAIL FROM subdomain needs (seed 003)."""

    mx: MxRecord
    spf: NamedRecord


class DnsRecords(_Frozen):
    """Exactly what the customer must place; also what the verifier expects to find."""

    mx: list[MxRecord]
    spf: NamedRecord
    dmarc: NamedRecord
    dkim: list[DkimRecord]
    verification: NamedRecord
    mail_from: MailFromRecords | None = None


class RecordCheck(_Frozen):
    """One record's verdict, with what was expected, what was found, and why."""

    record: RecordKind
    outcome: CheckOutcome
    name: str
    expected: str
    found: list[str] = Field(default_factory=list)
    reason: str | None = None  # machine code: record_missing, value_mismatch, ...
    message: str = ""  # a sentence a person can act on
    #: Facts behind the reason: e.g. `merged_record` (the SPF to publish), `lookup_costs`,
    #: `ttl_left` (seconds until caches may show a record the authority already serves).
    details: dict[str, JsonValue] = Field(default_factory=dict)


class DnsWarning(_Frozen):
    """Something already published that will conflict with the records: a warning, never a
    refusal (`existing_spf`, `dmarc_weaker`, `cname_at_domain`, `mx_elsewhere`, `dnssec_*`)."""

    code: str
    name: str
    found: list[str] = Field(default_factory=list)
    message: str


class SesIdentity(_Frozen):
    """What SES said of a domain's identity in one complete read: its DKIM, verification
    and MAIL FROM attributes, each asked for in batches of up to 100 identities.

    An identity SES does not know reads as not started and not signing; a MAIL FROM domain
    SES has not been given reads `not_started` (SES itself says nothing then).
    """

    dkim_signing_enabled: bool
    verification_status: DkimStatus
    mail_from_status: DkimStatus
    #: SES lets the identity send: its verification status is `success`.
    verified_for_sending: bool
    checked_at: datetime


class DomainSnapshot(_Frozen):
    """The domain as `GET /api/v1/domains/{id}` shows it at the moment of the event, minus
    personal data: what a subscriber stores, keyed by `id`, keeping the highest `sequence`."""

    id: str
    domain: str
    state: DomainStatus
    verification_status: Literal["pending", "verified", "failed"]
    region: str
    external_id: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    mode: DomainMode = DomainMode.SEND_RECEIVE
    mail_from_domain: str | None = None
    ses_dkim_status: DkimStatus | None = None
    dns_records: DnsRecords | None = None
    last_checks: list[RecordCheck] = Field(default_factory=list)
    created_at: datetime
    verified_at: datetime | None = None
    last_checked_at: datetime | None = None


class Event(BaseModel):
    """The envelope every event shares.

    Versioning: adding a field keeps the version (readers ignore what they do not know);
    a change of meaning (a field removed, renamed or read differently) is a new version,
    published beside the old one for a documented window. A reader refuses a version
    newer than its `VERSION` rather than guess at its meaning.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", json_schema_serialization_defaults_required=True
    )

    TYPE: ClassVar[str]
    #: The newest version of this event this code reads and writes.
    VERSION: ClassVar[int] = 1

    version: int = Field(default=1, ge=1)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)
    correlation_id: str  # the HTTP request id that started the work
    causation_id: uuid.UUID | None = None  # the event this one answers
    team_id: str  # the team's public id


class DomainRequested(Event):
    """api -> provisioner: provision this domain on the mail server and SES, all or nothing."""

    TYPE: ClassVar[str] = "domain.requested"
    type: Literal["domain.requested"] = "domain.requested"
    domain_id: str
    domain: str  # ASCII (IDNA A-label) form
    region: str
    mail_from_domain: str | None = None
    #: send_only: SES only, no mail-server row (added later if the domain is upgraded).
    mode: DomainMode = DomainMode.SEND_RECEIVE
    #: Added in 1.2 (additive, same version): the SES account the domain is placed in, for
    #: its life; None: the operator's default account (`DOMAINFLOW_SES_ACCOUNT`).
    ses_account: str | None = None


class ReceivingRequested(Event):
    """api -> provisioner: a send-only domain now receives too: add it to the mail server."""

    TYPE: ClassVar[str] = "domain.receiving_requested"
    type: Literal["domain.receiving_requested"] = "domain.receiving_requested"
    version: Literal[1] = 1
    domain_id: str
    domain: str
    region: str


class DomainProvisioned(Event):
    """provisioner -> api: both systems hold the domain; here are SES's DKIM tokens."""

    TYPE: ClassVar[str] = "domain.provisioned"
    type: Literal["domain.provisioned"] = "domain.provisioned"
    domain_id: str
    domain: str
    region: str
    dkim_tokens: list[str]
    mail_from_domain: str | None = None
    #: Added in 1.2 (additive, same version): the SES account the domain is placed in, for
    #: its life; None: the operator's default account (`DOMAINFLOW_SES_ACCOUNT`).
    ses_account: str | None = None


class ProvisioningRolledBack(Event):
    """provisioner -> api: a step failed and every step already done was undone."""

    TYPE: ClassVar[str] = "domain.provisioning_rolled_back"
    type: Literal["domain.provisioning_rolled_back"] = "domain.provisioning_rolled_back"
    domain_id: str
    domain: str
    failed_step: str
    reason: str


class SagaNeedsOperator(Event):
    """provisioner -> api: a saga stopped: undoing or removing `step` kept failing for a
    reason no wait mends (`error_class`; the provider's own words stay in the provisioner's
    log). Nothing more happens to the domain until an operator mends the cause and runs
    `domainflow domains release`."""

    TYPE: ClassVar[str] = "domain.needs_operator"
    type: Literal["domain.needs_operator"] = "domain.needs_operator"
    domain_id: str
    domain: str
    #: The saga that stopped: provision (its rollback), deprovision or receive.
    saga: str
    step: str
    error_class: str


class VerifyRequested(Event):
    """api -> verifier: check this domain's records now."""

    TYPE: ClassVar[str] = "domain.verify_requested"
    type: Literal["domain.verify_requested"] = "domain.verify_requested"
    domain_id: str
    domain: str
    region: str
    records: DnsRecords
    #: Added in 1.2 (additive, same version): the SES account the domain is placed in, for
    #: its life; None: the operator's default account (`DOMAINFLOW_SES_ACCOUNT`).
    ses_account: str | None = None


class ClaimRequested(Event):
    """api -> verifier: look up a held name's ownership TXT for a claim by another team.

    `domain_id` is the holder's domain; `claimant` is the TXT the claiming team (the
    envelope's `team_id`) was told to publish, `holder` the holder's own.
    """

    TYPE: ClassVar[str] = "domain.claim_requested"
    type: Literal["domain.claim_requested"] = "domain.claim_requested"
    version: Literal[1] = 1
    claim_id: str
    domain_id: str
    domain: str
    claimant: NamedRecord
    holder: NamedRecord


class ClaimChecked(Event):
    """verifier -> api: whether each team's ownership TXT is published, judged as a
    verification judges it (`verification_txt` checks: pass, fail with the reason and the
    expected record, or inconclusive)."""

    TYPE: ClassVar[str] = "domain.claim_checked"
    type: Literal["domain.claim_checked"] = "domain.claim_checked"
    version: Literal[1] = 1
    claim_id: str
    domain_id: str
    domain: str
    claimant: RecordCheck
    holder: RecordCheck
    checked_at: datetime


class VerificationCompleted(Event):
    """verifier -> api: the probe's per-record results and SES's DKIM status."""

    TYPE: ClassVar[str] = "domain.verification_completed"
    type: Literal["domain.verification_completed"] = "domain.verification_completed"
    domain_id: str
    domain: str
    trigger: VerificationTrigger
    outcome: VerificationOutcome
    ses_dkim_status: DkimStatus | None  # None when SES could not be asked (inconclusive)
    checks: list[RecordCheck]
    checked_at: datetime
    #: Pre-flight findings: what is already published that will conflict (see `DnsWarning`).
    warnings: list[DnsWarning] = Field(default_factory=list)
    #: Added in 1.1 (additive, same version): the identity's SES attributes, None when they
    #: were not all read (SES failed part-way, or a verifier that does not read them yet).
    ses_identity: SesIdentity | None = None


class DeletionRequested(Event):
    """api -> provisioner: remove the domain from SES and the mail server (the saga in reverse)."""

    TYPE: ClassVar[str] = "domain.deletion_requested"
    type: Literal["domain.deletion_requested"] = "domain.deletion_requested"
    domain_id: str
    domain: str
    region: str
    #: Added in 1.2 (additive, same version): the SES account the domain is placed in, for
    #: its life; None: the operator's default account (`DOMAINFLOW_SES_ACCOUNT`).
    ses_account: str | None = None


class DomainDeprovisioned(Event):
    """provisioner -> api: nothing of the domain is left on SES or the mail server."""

    TYPE: ClassVar[str] = "domain.deprovisioned"
    type: Literal["domain.deprovisioned"] = "domain.deprovisioned"
    domain_id: str
    domain: str


class DomainStatusChanged(Event):
    """api -> anyone: the domain moved in the state machine (version 2).

    Carries the state other services need (event-carried state transfer): the records
    the verifier schedules checks against, and the snapshot a subscriber stores. Version 2
    dropped version 1's `owner_emails` (personal data that went to every subscriber) and
    `notify_owners` (the notifier's cue): owners now hear through the internal
    `notification.requested`. Version 1 is published beside it for one release
    (`DomainStatusChangedV1`), with the same `sequence`.
    """

    TYPE: ClassVar[str] = "domain.status_changed"
    VERSION: ClassVar[int] = 2
    type: Literal["domain.status_changed"] = "domain.status_changed"
    version: int = Field(default=2, ge=1)
    domain_id: str
    domain: str
    region: str
    old_status: DomainStatus | None
    new_status: DomainStatus
    reason: str
    consecutive_failures: int = 0
    records: DnsRecords | None = None
    checks: list[RecordCheck] = Field(default_factory=list)
    ses_dkim_status: DkimStatus | None = None
    #: Per domain, bumped under the domain's lock: a subscriber keeps the highest it saw
    #: and drops anything older (replica clocks make `occurred_at` no order).
    sequence: int | None = None
    reason_code: ChangeReason | None = None
    trigger: ChangeTrigger | None = None
    snapshot: DomainSnapshot | None = None
    #: Added in 1.2 (additive, same version): the SES account the domain is placed in, for
    #: its life; None: the operator's default account (`DOMAINFLOW_SES_ACCOUNT`).
    ses_account: str | None = None


class DomainStatusChangedV1(Event):
    """api -> anyone: version 1 of `domain.status_changed`, published beside version 2 for
    one release so that its readers keep working; `owner_emails` is now always empty.

    Read version 2 (same routing key, same `sequence`: a subscriber keeping the highest
    sequence per domain drops the second copy of each change). Retired in the next release.
    """

    TYPE: ClassVar[str] = "domain.status_changed"
    type: Literal["domain.status_changed"] = "domain.status_changed"
    domain_id: str
    domain: str
    region: str
    old_status: DomainStatus | None
    new_status: DomainStatus
    reason: str
    consecutive_failures: int = 0
    #: The state machine's verdict that owners hear of this transition (failed, or verified).
    notify_owners: bool = False
    records: DnsRecords | None = None
    checks: list[RecordCheck] = Field(default_factory=list)
    ses_dkim_status: DkimStatus | None = None
    #: Always empty since version 2 exists: owners' addresses are personal data.
    owner_emails: list[str] = Field(default_factory=list)
    sequence: int | None = None
    reason_code: ChangeReason | None = None
    trigger: ChangeTrigger | None = None
    snapshot: DomainSnapshot | None = None
    ses_account: str | None = None

    @classmethod
    def beside(cls, current: DomainStatusChanged, *, notify_owners: bool) -> DomainStatusChangedV1:
        """The version 1 copy of a change: the same fields, an id of its own."""
        fields = current.model_dump(exclude={"event_id", "version"})
        return cls(**fields, notify_owners=notify_owners)


class NotificationRequested(Event):
    """api -> notifier (internal): email the team's owners about a domain's status change,
    or (`reason_code` `registration_expiring`) about its registration ending soon.

    Internal so that owners' addresses reach only the notifier: no subscriber may bind its
    routing key. `transition_event_id` is the public `domain.status_changed` it is about
    (the id owners' mails are tagged and deduplicated with); for an expiry, which changes no
    status, an id derived from the domain and the expiry date, so one date is mailed once.
    """

    TYPE: ClassVar[str] = "notification.requested"
    type: Literal["notification.requested"] = "notification.requested"
    domain_id: str
    domain: str
    region: str
    transition_event_id: uuid.UUID
    old_status: DomainStatus | None
    new_status: DomainStatus
    reason: str
    reason_code: ChangeReason | None = None
    checks: list[RecordCheck] = Field(default_factory=list)
    ses_dkim_status: DkimStatus | None = None
    owner_emails: list[str]
    #: Added in 1.1 (additive, same version): when the zone's registration ends, on a
    #: `registration_expiring` notice (`old_status` and `new_status` are then both the
    #: domain's unchanged status); None otherwise.
    registration_expires_at: datetime | None = None


class DomainChecksFailed(Event):
    """api -> anyone: a verification failed and the status stayed what it was, with
    another set of failing checks than the previous verification's.

    What a status change does not tell: a pending domain whose records are still wrong,
    or wrong in a new way. Sent when the set of failing (record, reason) pairs changes,
    not on every six-hourly pass with the same result.
    """

    TYPE: ClassVar[str] = "domain.checks_failed"
    type: Literal["domain.checks_failed"] = "domain.checks_failed"
    domain_id: str
    domain: str
    status: DomainStatus
    sequence: int
    trigger: ChangeTrigger
    #: The checks that did not pass, as `GET /api/v1/domains/{id}` shows them.
    failing_checks: list[RecordCheck]
    ses_dkim_status: DkimStatus | None = None
    checked_at: datetime
    snapshot: DomainSnapshot


class DomainDeleted(Event):
    """api -> anyone: the domain is gone from every system domainflow manages (also when
    provisioning was rolled back: `reason_code` says which)."""

    TYPE: ClassVar[str] = "domain.deleted"
    type: Literal["domain.deleted"] = "domain.deleted"
    domain_id: str
    domain: str
    #: Added in 1.1 (additive, same version); see `DomainStatusChanged`.
    sequence: int | None = None
    reason_code: ChangeReason | None = None
    reason: str | None = None
    trigger: ChangeTrigger | None = None
    snapshot: DomainSnapshot | None = None


class DomainCreated(Event):
    """api -> anyone: a team added a domain; its records are in the snapshot once SES
    has answered (a later `domain.status_changed` carries them otherwise)."""

    TYPE: ClassVar[str] = "domain.created"
    type: Literal["domain.created"] = "domain.created"
    domain_id: str
    domain: str
    sequence: int
    reason_code: ChangeReason = ChangeReason.CREATED
    trigger: ChangeTrigger = ChangeTrigger.REQUEST
    snapshot: DomainSnapshot


class NotificationSent(Event):
    """notifier -> anyone: owners were emailed about a transition (version 2).

    Version 2 says how many owners SES accepted a mail for, not who: version 1's
    `recipients` (owners' addresses, personal data) went to every subscriber. Version 1 is
    published beside it for one release (`NotificationSentV1`), its `recipients` empty.
    """

    TYPE: ClassVar[str] = "notification.sent"
    VERSION: ClassVar[int] = 2
    type: Literal["notification.sent"] = "notification.sent"
    version: int = Field(default=2, ge=1)
    domain_id: str
    domain: str
    transition_event_id: uuid.UUID
    new_status: DomainStatus
    recipient_count: int
    message_ids: list[str]


class NotificationSentV1(Event):
    """notifier -> anyone: version 1 of `notification.sent`, published beside version 2 for
    one release; `recipients` is now always empty (owners' addresses are personal data)."""

    TYPE: ClassVar[str] = "notification.sent"
    type: Literal["notification.sent"] = "notification.sent"
    domain_id: str
    domain: str
    transition_event_id: uuid.UUID
    new_status: DomainStatus
    recipients: list[str]
    message_ids: list[str]

    @classmethod
    def beside(cls, current: NotificationSent) -> NotificationSentV1:
        """The version 1 copy: the same fields, no addresses, an id of its own."""
        fields = current.model_dump(exclude={"event_id", "version", "recipient_count"})
        return cls(**fields, recipients=[])


AnyEvent = Annotated[
    DomainRequested
    | DomainProvisioned
    | ProvisioningRolledBack
    | SagaNeedsOperator
    | VerifyRequested
    | VerificationCompleted
    | DeletionRequested
    | DomainDeprovisioned
    | DomainStatusChanged
    | DomainDeleted
    | DomainCreated
    | DomainChecksFailed
    | NotificationRequested
    | NotificationSent,
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        DomainRequested,
        ReceivingRequested,
        DomainProvisioned,
        ProvisioningRolledBack,
        SagaNeedsOperator,
        VerifyRequested,
        VerificationCompleted,
        ClaimRequested,
        ClaimChecked,
        DeletionRequested,
        DomainDeprovisioned,
        DomainStatusChanged,
        DomainDeleted,
        DomainCreated,
        DomainChecksFailed,
        NotificationRequested,
        NotificationSent,
    )
}

#: Older versions still published beside their successor (same type and routing key) for
#: one release, so that their readers keep working; each is retired in the release after.
SUPERSEDED: tuple[type[Event], ...] = (DomainStatusChangedV1, NotificationSentV1)
