"""The domain as the api owns it: a typed entity whose every status move goes through `state`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from domainflow.api.domain import state as sm
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    DnsWarning,
    DomainMode,
    DomainStatus,
    RecordCheck,
    SesIdentity,
    VerificationOutcome,
)

#: Warnings only the re-verification cycle's registration watch reports (the verifier's
#: registration.py); every other code is a manual verify's pre-flight finding.
WATCH_WARNINGS: Final = frozenset({"nameservers_changed", "registration_expiring"})


@dataclass
class Domain:
    """One custom sending domain of one team. `pk` is the row id (0 before it is stored)."""

    pk: int
    public_id: str
    team_pk: int
    team_public_id: str
    name: str  # normalized, A-label form
    status: DomainStatus
    region: str
    request_id: str  # the request that added it
    created_at: datetime
    mode: DomainMode = DomainMode.SEND_RECEIVE
    consecutive_failures: int = 0
    degraded: bool = False
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    mail_from_domain: str | None = None
    dkim_tokens: tuple[str, ...] = ()
    ses_dkim_status: DkimStatus = DkimStatus.PENDING
    last_checks: tuple[RecordCheck, ...] | None = None
    #: The last verification's warnings (pre-flight findings on a manual verify; the
    #: registration watch's on a scheduled one).
    last_warnings: tuple[DnsWarning, ...] = ()
    last_outcome: VerificationOutcome | None = None
    failure_reason: str | None = None
    verified_at: datetime | None = None
    #: When a verification first saw its ownership TXT: from then on the mail server accepts
    #: mail for it (if it receives); before, the name is only held there.
    ownership_proven_at: datetime | None = None
    last_checked_at: datetime | None = None
    #: The verification a caller waits on: its request's event id and when it was asked.
    verify_event_id: uuid.UUID | None = None
    verify_requested_at: datetime | None = None
    deleted_at: datetime | None = None
    # What SES last said of the identity (null until a verification has asked).
    ses_dkim_signing_enabled: bool | None = None
    ses_identity_verification_status: str | None = None
    ses_mail_from_status: DkimStatus | None = None
    ses_verified_for_sending: bool | None = None
    ses_identity_checked_at: datetime | None = None
    #: The SES account it is placed in for its life (None: the default account).
    ses_account: str | None = None
    #: The number of the latest public event about it (domain.created is 1).
    sequence: int = 0
    #: Read-only, from the store: live mailboxes on it, and when it last changed.
    mailbox_count: int = 0
    updated_at: datetime | None = None
    #: Read-only, from the store: where the stored domain stands. It changes with every write
    #: of the domain and every mailbox added to or removed from it, so with every change of
    #: how the domain is shown ('' when it was not read whole from the store).
    version: str = ""

    @property
    def state(self) -> sm.DomainState:
        return sm.DomainState(self.status, self.consecutive_failures, self.degraded)

    def apply(self, happened: sm.DomainInput) -> sm.Transition:
        """Move as the state machine says (or raise `TransitionRefused`, changing nothing)."""
        move = sm.transition(self.state, happened)
        self.status = move.new_state.status
        self.consecutive_failures = move.new_state.consecutive_failures
        self.degraded = move.new_state.degraded
        return move

    @property
    def verification_in_progress(self) -> bool:
        return self.status is DomainStatus.PROVISIONING or self.verify_requested_at is not None

    def verification_outstanding(self, now: datetime, stale_seconds: float) -> bool:
        """A verification was requested and is not yet presumed lost."""
        if self.verify_event_id is None or self.verify_requested_at is None:
            return False
        return (now - self.verify_requested_at).total_seconds() < stale_seconds

    def await_verification(self, request_event_id: uuid.UUID, now: datetime) -> None:
        self.verify_event_id = request_event_id
        self.verify_requested_at = now

    def answer_verification(self, request_event_id: uuid.UUID | None) -> None:
        """Only the answer to the request a caller waits on releases it; a scheduled probe
        landing meanwhile does not."""
        if request_event_id is not None and self.verify_event_id == request_event_id:
            self.verify_event_id = None
            self.verify_requested_at = None

    def note_ses_identity(self, reading: SesIdentity) -> None:
        """What SES said of the identity, unless a later reading is already kept (a
        scheduled and a manual probe may answer out of order)."""
        kept = self.ses_identity_checked_at
        if kept is not None and kept > reading.checked_at:
            return
        self.ses_dkim_signing_enabled = reading.dkim_signing_enabled
        self.ses_identity_verification_status = reading.verification_status.value
        self.ses_mail_from_status = reading.mail_from_status
        self.ses_verified_for_sending = reading.verified_for_sending
        self.ses_identity_checked_at = reading.checked_at

    def next_sequence(self) -> int:
        """Number the next public event (the caller holds the domain's row lock)."""
        self.sequence += 1
        return self.sequence

    def take_warnings(self, found: Iterable[DnsWarning], *, scheduled: bool) -> None:
        """Keep a verification's warnings beside the other kind's: a manual verify looks for
        pre-flight conflicts, the schedule's registration watch for the rest, and neither's
        silence says anything about what the other found."""
        kept = [w for w in self.last_warnings if (w.code in WATCH_WARNINGS) is not scheduled]
        self.last_warnings = (*kept, *found)

    def failing(self) -> frozenset[tuple[str, str | None]]:
        """The records that did not pass at the last probe, each with its reason code."""
        return frozenset(
            (c.record.value, c.reason)
            for c in self.last_checks or ()
            if c.outcome is not CheckOutcome.PASS
        )
