"""The domain state machine: a state and an input in, the next state and what to tell people out.

Pure and total: every status × input pair either moves as `TRANSITIONS` says or raises
`TransitionRefused`. The inputs are named for what happened; the api's handlers turn events
(`DomainProvisioned`, `VerificationCompleted`, ...) and requests into them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, assert_never

from domainflow.contracts.events import DomainStatus

PublicStatus = Literal["pending", "verified", "failed"]

# Failures in a row, after the domain had been verified, that make it `failed`: the blip that
# sent it back to pending, then one more cycle (seed 001, "Automatic re-verification").
FAILURES_BEFORE_FAILED: Final = 2

_CHECKED: Final = frozenset({DomainStatus.PENDING, DomainStatus.VERIFIED, DomainStatus.FAILED})


@dataclass(frozen=True, slots=True)
class DomainState:
    """Where a domain stands. `degraded`: it was verified and has failed since."""

    status: DomainStatus
    consecutive_failures: int = 0
    degraded: bool = False

    def __post_init__(self) -> None:
        if self.consecutive_failures < 0:
            raise ValueError(f"consecutive_failures is never negative: {self.consecutive_failures}")


@dataclass(frozen=True, slots=True)
class Provisioned:
    """The provisioner placed the domain on the mail server and SES."""


@dataclass(frozen=True, slots=True)
class ProvisioningRolledBack:
    """A provisioning step failed and every step already done was undone."""


@dataclass(frozen=True, slots=True)
class VerificationPassed:
    """Every DNS check passed and SES reports DKIM success."""


@dataclass(frozen=True, slots=True)
class VerificationFailed:
    """At least one check definitely failed."""


@dataclass(frozen=True, slots=True)
class VerificationInconclusive:
    """The resolver or SES could not answer (timeout, SERVFAIL): no evidence either way."""


@dataclass(frozen=True, slots=True)
class ReceivingRequested:
    """A send-only domain was upgraded to send and receive: its MX must now verify."""


@dataclass(frozen=True, slots=True)
class DeletionRequested:
    """A client asked for the domain to be deleted."""


@dataclass(frozen=True, slots=True)
class Released:
    """An operator cleared a domain stuck while provisioning or deleting (a saga stopped for
    an operator, a request event parked as poison): its name is free at once."""


@dataclass(frozen=True, slots=True)
class ClaimedAway:
    """Another team showed the name is theirs (its ownership TXT) and the claim was granted:
    the domain is released as a DELETE would release it, and its owners are told why."""


@dataclass(frozen=True, slots=True)
class Deprovisioned:
    """Nothing of the domain is left on SES or the mail server."""


DomainInput = (
    Provisioned
    | ProvisioningRolledBack
    | VerificationPassed
    | VerificationFailed
    | VerificationInconclusive
    | ReceivingRequested
    | DeletionRequested
    | Released
    | ClaimedAway
    | Deprovisioned
)

ALL_INPUTS: Final[tuple[DomainInput, ...]] = (
    Provisioned(),
    ProvisioningRolledBack(),
    VerificationPassed(),
    VerificationFailed(),
    VerificationInconclusive(),
    ReceivingRequested(),
    DeletionRequested(),
    Released(),
    ClaimedAway(),
    Deprovisioned(),
)

_S = DomainStatus
# Every accepted (status, input) pair and the statuses it may lead to; a pair missing here is
# refused. `transition` is the rule, this table its summary (the tests hold one to the other).
TRANSITIONS: Final[Mapping[tuple[DomainStatus, type[DomainInput]], frozenset[DomainStatus]]] = {
    (_S.PROVISIONING, Provisioned): frozenset({_S.PENDING}),
    (_S.PROVISIONING, ProvisioningRolledBack): frozenset({_S.DELETED}),
    (_S.PENDING, VerificationPassed): frozenset({_S.VERIFIED}),
    (_S.VERIFIED, VerificationPassed): frozenset({_S.VERIFIED}),
    (_S.FAILED, VerificationPassed): frozenset({_S.VERIFIED}),
    (_S.PENDING, VerificationFailed): frozenset({_S.PENDING, _S.FAILED}),
    (_S.VERIFIED, VerificationFailed): frozenset({_S.PENDING}),
    (_S.FAILED, VerificationFailed): frozenset({_S.FAILED}),
    (_S.PENDING, VerificationInconclusive): frozenset({_S.PENDING}),
    (_S.VERIFIED, VerificationInconclusive): frozenset({_S.VERIFIED}),
    (_S.FAILED, VerificationInconclusive): frozenset({_S.FAILED}),
    (_S.PENDING, ReceivingRequested): frozenset({_S.PENDING}),
    (_S.VERIFIED, ReceivingRequested): frozenset({_S.PENDING}),
    (_S.FAILED, ReceivingRequested): frozenset({_S.PENDING}),
    (_S.PENDING, DeletionRequested): frozenset({_S.DELETING}),
    (_S.VERIFIED, DeletionRequested): frozenset({_S.DELETING}),
    (_S.FAILED, DeletionRequested): frozenset({_S.DELETING}),
    (_S.DELETING, DeletionRequested): frozenset({_S.DELETING}),
    (_S.PENDING, ClaimedAway): frozenset({_S.DELETING}),
    (_S.VERIFIED, ClaimedAway): frozenset({_S.DELETING}),
    (_S.FAILED, ClaimedAway): frozenset({_S.DELETING}),
    (_S.DELETING, Deprovisioned): frozenset({_S.DELETED}),
    (_S.PROVISIONING, Released): frozenset({_S.DELETED}),
    (_S.DELETING, Released): frozenset({_S.DELETED}),
}


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one input.

    `notify_owners` asks the notifier to write to the team's owners; for a domain that became
    verified the notifier's configuration decides whether that mail is actually sent.
    """

    new_state: DomainState
    changed_status: bool
    notify_owners: bool


class TransitionRefused(Exception):  # noqa: N818 - named for what happened, like the events
    """The input does not apply to a domain in this status; nothing changes."""

    def __init__(self, status: DomainStatus, input: DomainInput, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.input = input
        self.message = message


def transition(state: DomainState, event: DomainInput) -> Transition:
    """Apply one input to a domain's state, or raise TransitionRefused."""
    status = state.status
    match event:
        case Provisioned():
            if status is _S.PROVISIONING:
                return _moved(state, DomainState(_S.PENDING), notify=False)
        case ProvisioningRolledBack():
            if status is _S.PROVISIONING:
                # Gone, not failed: nothing was kept, so a retried POST starts clean.
                return _moved(state, DomainState(_S.DELETED), notify=False)
        case VerificationPassed():
            if status in _CHECKED:
                # Owners hear of a first verification and of a recovery from `failed`; a
                # verified domain that blipped back to pending was never reported as broken,
                # so its recovery is silent too.
                notify = status is _S.FAILED or (status is _S.PENDING and not state.degraded)
                return _moved(state, DomainState(_S.VERIFIED), notify=notify)
        case VerificationFailed():
            return _on_failure(state, event)
        case VerificationInconclusive():
            if status in _CHECKED:
                return Transition(new_state=state, changed_status=False, notify_owners=False)
        case ReceivingRequested():
            if status in _CHECKED:
                # New checks apply (the MX): pending afresh until they pass; nothing broke,
                # so no failure is counted and nobody is told.
                return _moved(state, DomainState(_S.PENDING), notify=False)
        case DeletionRequested():
            if status in _CHECKED:
                return _moved(state, replace(state, status=_S.DELETING), notify=False)
            if status is _S.DELETING:
                # A repeated DELETE is answered as the first one was.
                return Transition(new_state=state, changed_status=False, notify_owners=False)
        case Released():
            if status in (_S.PROVISIONING, _S.DELETING):
                return _moved(state, DomainState(_S.DELETED), notify=False)
        case ClaimedAway():
            if status in _CHECKED:
                # The owners lose a name they held: they hear it once, with the reason.
                return _moved(state, replace(state, status=_S.DELETING), notify=True)
        case Deprovisioned():
            if status is _S.DELETING:
                return _moved(state, DomainState(_S.DELETED), notify=False)
        case _:
            assert_never(event)
    raise TransitionRefused(status, event, _refusal(status, event))


@dataclass(frozen=True, slots=True)
class OwnershipSeen:
    """What one verification's ownership check means for the domain and the mail server.

    `proven`: the domain's ownership is proven from now on (it never goes back: a TXT removed
    later is a failing check like any other, not a lost name). `goes_live`: ask the mail
    server to accept mail for it now, exactly once in the domain's life.
    """

    proven: bool
    goes_live: bool


def ownership_seen(
    status: DomainStatus, *, proven: bool, receives: bool, txt_passed: bool
) -> OwnershipSeen:
    """A verification of a domain in `status` came back with its ownership TXT `txt_passed`.

    Not live before proven (a departure from seed 001, where the first add put the name on
    the mail server): whoever adds a name gets its SES identity and records at once, but the
    mail server accepts mail for it only once a verification has seen the TXT that shows the
    team controls the name's DNS. A verification of a domain being provisioned or deleted is
    refused by `transition` and proves nothing; a send-only domain is proven but never live.
    """
    if proven:
        return OwnershipSeen(proven=True, goes_live=False)  # already live, if it receives
    if status not in _CHECKED or not txt_passed:
        return OwnershipSeen(proven=False, goes_live=False)
    return OwnershipSeen(proven=True, goes_live=receives)


def goes_live_on_upgrade(*, proven: bool) -> bool:
    """A send-only domain upgraded to send and receive goes live at once only if its
    ownership is already proven; otherwise the verification that proves it puts it live."""
    return proven


def public_status(status: DomainStatus) -> PublicStatus:
    """The API's `verification_status` (pending | verified | failed) for an internal status.

    - provisioning shows as `pending`: the domain exists and is not yet verified; the POST that
      outlived its wait bound already said `verification_in_progress`.
    - deleting shows as `pending`: the domain is no longer usable for mail, and `failed` would
      wrongly suggest a DNS problem to monitoring that lists domains.
    - deleted has no public status (the API answers 404), so it raises ValueError.
    """
    match status:
        case _S.PROVISIONING | _S.PENDING | _S.DELETING:
            return "pending"
        case _S.VERIFIED:
            return "verified"
        case _S.FAILED:
            return "failed"
        case _S.DELETED:
            raise ValueError("a deleted domain has no public status; answer 404")
        case _:
            assert_never(status)


def _on_failure(state: DomainState, event: VerificationFailed) -> Transition:
    failures = state.consecutive_failures + 1
    match state.status:
        case _S.VERIFIED:
            # The first failure after verification: back to pending, quietly (one blip never
            # emails), remembering that the domain used to work.
            return _moved(state, DomainState(_S.PENDING, 1, degraded=True), notify=False)
        case _S.PENDING if state.degraded and failures >= FAILURES_BEFORE_FAILED:
            return _moved(state, DomainState(_S.FAILED, failures, degraded=True), notify=True)
        case _S.PENDING | _S.FAILED:
            # A never-verified domain simply stays pending; a failed one stays failed and its
            # owners, already told once, are not told again.
            return _moved(state, replace(state, consecutive_failures=failures), notify=False)
        case _:
            raise TransitionRefused(state.status, event, _refusal(state.status, event))


def _moved(old: DomainState, new: DomainState, *, notify: bool) -> Transition:
    return Transition(
        new_state=new, changed_status=new.status is not old.status, notify_owners=notify
    )


def _refusal(status: DomainStatus, event: DomainInput) -> str:
    name = type(event).__name__
    if status is _S.DELETED:
        return f"The domain has been deleted; {name} no longer applies to it."
    if status is _S.PROVISIONING and isinstance(event, DeletionRequested):
        return "The domain is still being provisioned; delete it once provisioning has finished."
    if status is _S.PROVISIONING:
        return f"The domain is still being provisioned; {name} cannot apply yet."
    if status is _S.DELETING and isinstance(
        event, VerificationPassed | VerificationFailed | VerificationInconclusive
    ):
        return "The domain is being deleted; verification results for it are ignored."
    return f"{name} does not apply to a domain that is {status.value}."
