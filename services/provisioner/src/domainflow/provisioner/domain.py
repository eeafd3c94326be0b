"""The provisioning saga, pure: a saga's state and an outcome in, the next state or action out.

One saga per (domain, kind). Provisioning adds the domain to the mail server (held, not yet
accepting mail), creates the SES identity with Easy DKIM, then sets the custom MAIL FROM
domain when asked: all or nothing. Receiving makes the mail server accept mail for it, once
the api has seen its ownership proven.

A step's status is written *before* the outside call (`started`: intent) and *after* it
(`done`: outcome), so a replica that dies between the two leaves a record of what may have
happened. Re-entry redoes a `started` step (every call is idempotent);
compensation undoes, newest first, every step that is `started` or `done`. A step whose
every try was plainly refused (SES answered with a refusal, the connection was refused)
and none of whose calls took effect goes back to `pending`: there is nothing to undo, and
rolling back needs nothing from the system that refused. (SES's throttling never gets
here: the adapter waits it out in later slots of the shared budget.)

Deprovisioning runs the steps in reverse and cannot roll back: each removal is idempotent
and is retried, with backoff, until it succeeds, as long as what fails it is an outage
(a timeout, a connection refused, SES busy): those pass. An undo, a removal or a
receiving step that keeps failing for any other reason (a refusal, a bug) is tried
`undo_attempts` times, then the saga stops in `needs_operator`, naming the step and the
error class: retrying it for ever would fail the same way and hold the domain's name.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

from domainflow.contracts import (
    DomainDeprovisioned,
    DomainProvisioned,
    Event,
    ProvisioningRolledBack,
    SagaNeedsOperator,
)


class SagaKind(StrEnum):
    PROVISION = "provision"
    DEPROVISION = "deprovision"
    #: The domain's ownership is proven and it receives: live on the mail server, forward only.
    RECEIVE = "receive"


class SagaState(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    #: Stopped: an undo or removal kept failing for a reason no wait mends. Nothing more
    #: happens until an operator mends the cause and releases the domain.
    NEEDS_OPERATOR = "needs_operator"


UNFINISHED = (SagaState.RUNNING, SagaState.COMPENSATING)


class Step(StrEnum):
    MAILSERVER = "mailserver"
    SES_IDENTITY = "ses_identity"
    MAIL_FROM = "mail_from"


class StepStatus(StrEnum):
    PENDING = "pending"
    STARTED = "started"  # intent recorded; the call may or may not have taken effect
    DONE = "done"
    UNDONE = "undone"


#: What a person reads when a step fails: what it was doing, on which system.
_STEP_DESCRIPTIONS = {
    Step.MAILSERVER: "adding the domain to the mail server",
    Step.SES_IDENTITY: "creating the Amazon SES identity with Easy DKIM",
    Step.MAIL_FROM: "setting the custom MAIL FROM domain on Amazon SES",
}


def steps_for(kind: SagaKind, *, mail_from: bool, receives: bool = True) -> tuple[Step, ...]:
    """The steps a saga runs, in the order it runs them (a send-only domain is never on the
    mail server: it receives nothing)."""
    if kind is SagaKind.PROVISION:
        steps: tuple[Step, ...] = (Step.MAILSERVER,) if receives else ()
        steps += (Step.SES_IDENTITY, Step.MAIL_FROM) if mail_from else (Step.SES_IDENTITY,)
        return steps
    if kind is SagaKind.RECEIVE:
        return (Step.MAILSERVER,)
    # Deleting the SES identity removes its MAIL FROM setting with it: nothing to undo there.
    return (Step.SES_IDENTITY, Step.MAILSERVER)


#: An AWS region's name, whole (`us-east-1`, `ap-southeast-2`, `us-gov-west-1`).
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
#: A domain name as the api stores it: lower-case A-labels, letters, digits and hyphens.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")


def refusal(domain: str, region: str, mail_from_domain: str | None = None) -> str | None:
    """Why no saga could ever run for this request (None: it can). The api checks both
    before it asks; an event failing here was written by an older release or a bug, and
    every call with it would fail the same way (aiohttp refuses a newline in a header)."""
    if not _REGION.fullmatch(region):
        return f"region {region!r} is not an AWS region's name"
    for name in (domain, mail_from_domain):
        if name is not None and not _NAME.fullmatch(name):
            return f"{name!r} is not a domain name in A-label form"
    return None


@dataclass(frozen=True)
class ProvisioningSaga:
    domain_id: str
    team_id: str
    domain: str
    region: str
    mail_from_domain: str | None
    kind: SagaKind
    correlation_id: str
    #: The event that started the saga; the result event answers it.
    causation_id: uuid.UUID
    #: Tries of one step (or one undo) before a provisioning saga compensates.
    max_attempts: int
    state: SagaState = SagaState.RUNNING
    steps: tuple[tuple[Step, StepStatus], ...] = ()
    dkim_tokens: tuple[str, ...] = ()
    failed_step: Step | None = None
    #: The outside system's own words: for the log and the operator, never for clients.
    error: str | None = None
    #: What kind of failure `error` is (`ses:AccessDenied`, `mailserver:refused`, ...): the
    #: part a client may read.
    error_class: str | None = None
    #: Starts of the step (or undo) now under way, including ones a crash interrupted.
    attempts: int = 0
    #: An earlier try of the step under way ended without a clear answer (a timeout, a
    #: crash): it may have taken effect, so a later plain refusal does not clear it.
    in_doubt: bool = False
    #: The SES account the domain is placed in (None: the default account).
    ses_account: str | None = None

    @classmethod
    def start(
        cls,
        *,
        kind: SagaKind,
        domain_id: str,
        team_id: str,
        domain: str,
        region: str,
        mail_from_domain: str | None,
        correlation_id: str,
        causation_id: uuid.UUID,
        max_attempts: int,
        receives: bool = True,
        ses_account: str | None = None,
    ) -> ProvisioningSaga:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        steps = steps_for(kind, mail_from=mail_from_domain is not None, receives=receives)
        return cls(
            domain_id=domain_id,
            team_id=team_id,
            domain=domain,
            region=region,
            mail_from_domain=mail_from_domain,
            kind=kind,
            correlation_id=correlation_id,
            causation_id=causation_id,
            max_attempts=max_attempts,
            steps=tuple((s, StepStatus.PENDING) for s in steps),
            ses_account=ses_account,
        )

    @property
    def finished(self) -> bool:
        return self.state not in UNFINISHED

    def status(self, step: Step) -> StepStatus:
        for name, status in self.steps:
            if name is step:
                return status
        raise KeyError(f"{self.kind} saga has no step {step}")

    def with_status(self, step: Step, status: StepStatus) -> ProvisioningSaga:
        self.status(step)  # raises for a step the saga does not have
        return replace(self, steps=tuple((s, status if s is step else st) for s, st in self.steps))


# --- what to do next -------------------------------------------------------------------


@dataclass(frozen=True)
class DoStep:
    """Run `step` (for deprovisioning: remove what it made). `retry` > 0: pause first."""

    step: Step
    retry: int


@dataclass(frozen=True)
class UndoStep:
    """Undo `step` while compensating. `retry` > 0: pause first."""

    step: Step
    retry: int


@dataclass(frozen=True)
class Finish:
    """Every step is settled: commit `state` together with `events`."""

    state: SagaState
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Idle:
    """The saga is already finished; nothing to do."""


Action = DoStep | UndoStep | Finish | Idle


def next_action(saga: ProvisioningSaga) -> Action:
    if saga.finished:
        return Idle()
    if saga.state is SagaState.RUNNING:
        for step, status in saga.steps:
            if status is not StepStatus.DONE:
                return DoStep(step, retry=saga.attempts)
        return Finish(SagaState.COMPLETED, result_events(saga, SagaState.COMPLETED))
    for step, status in reversed(saga.steps):
        if status in (StepStatus.STARTED, StepStatus.DONE):
            return UndoStep(step, retry=saga.attempts)
    return Finish(SagaState.ROLLED_BACK, result_events(saga, SagaState.ROLLED_BACK))


def result_events(
    saga: ProvisioningSaga, state: SagaState, *, answering: Event | None = None
) -> tuple[Event, ...]:
    """The event that reports a saga finishing in `state`.

    It answers the event that started the saga, or `answering` when a later request for
    the same saga is told the result again.
    """
    correlation_id = answering.correlation_id if answering else saga.correlation_id
    causation_id = answering.event_id if answering else saga.causation_id
    if state is SagaState.NEEDS_OPERATOR:
        return (
            SagaNeedsOperator(
                domain_id=saga.domain_id,
                domain=saga.domain,
                saga=saga.kind.value,
                step=(saga.failed_step or saga.steps[0][0]).value,
                error_class=saga.error_class or "unknown",
                correlation_id=correlation_id,
                causation_id=causation_id,
                team_id=saga.team_id,
            ),
        )
    if saga.kind is SagaKind.RECEIVE:
        return ()  # the api moved the domain already; its MX check shows the rest
    if saga.kind is SagaKind.DEPROVISION:
        return (
            DomainDeprovisioned(
                domain_id=saga.domain_id,
                domain=saga.domain,
                correlation_id=correlation_id,
                causation_id=causation_id,
                team_id=saga.team_id,
            ),
        )
    if state is SagaState.COMPLETED:
        return (
            DomainProvisioned(
                domain_id=saga.domain_id,
                domain=saga.domain,
                region=saga.region,
                dkim_tokens=list(saga.dkim_tokens),
                mail_from_domain=saga.mail_from_domain,
                ses_account=saga.ses_account,
                correlation_id=correlation_id,
                causation_id=causation_id,
                team_id=saga.team_id,
            ),
        )
    failed = saga.failed_step or saga.steps[0][0]
    return (
        ProvisioningRolledBack(
            domain_id=saga.domain_id,
            domain=saga.domain,
            failed_step=failed.value,
            reason=rollback_reason(failed, saga.error_class),
            correlation_id=correlation_id,
            causation_id=causation_id,
            team_id=saga.team_id,
        ),
    )


def rollback_reason(step: Step, error_class: str | None) -> str:
    """What the requester reads: the step and the class of error, never the provider's own
    words (with real SES they name accounts and ARNs; they go to the log instead)."""
    return (
        f"Provisioning stopped while {_STEP_DESCRIPTIONS[step]} "
        f"({error_class or 'unknown'}). "
        "Everything done before it was undone, so nothing is half-configured; "
        "add the domain again to retry."
    )


# --- transitions -----------------------------------------------------------------------


def _expect(saga: ProvisioningSaga, step: Step, *allowed: StepStatus) -> None:
    if saga.finished:
        raise ValueError(f"saga for {saga.domain} is already {saga.state}")
    status = saga.status(step)
    if status not in allowed:
        raise ValueError(f"step {step} is {status}, expected one of {[a.value for a in allowed]}")


def step_started(saga: ProvisioningSaga, step: Step) -> ProvisioningSaga:
    """Intent: about to call the outside system for `step` (persist before the call)."""
    if saga.state is not SagaState.RUNNING:
        raise ValueError(f"cannot start {step}: saga is {saga.state}")
    _expect(saga, step, StepStatus.PENDING, StepStatus.STARTED)
    # Still `started`: the last try's outcome was never recorded (the replica died).
    in_doubt = saga.in_doubt or saga.status(step) is StepStatus.STARTED
    return replace(
        saga.with_status(step, StepStatus.STARTED), attempts=saga.attempts + 1, in_doubt=in_doubt
    )


def undo_started(saga: ProvisioningSaga, step: Step) -> ProvisioningSaga:
    """Intent: about to undo `step`; its status stays until the undo is confirmed."""
    if saga.state is not SagaState.COMPENSATING:
        raise ValueError(f"cannot undo {step}: saga is {saga.state}")
    _expect(saga, step, StepStatus.STARTED, StepStatus.DONE)
    return replace(saga, attempts=saga.attempts + 1)


def step_succeeded(
    saga: ProvisioningSaga, step: Step, tokens: list[str] | tuple[str, ...] | None = None
) -> ProvisioningSaga:
    """Outcome: the call for `step` succeeded (SES's identity step brings the DKIM tokens)."""
    _expect(saga, step, StepStatus.STARTED)
    if saga.state is not SagaState.RUNNING:
        raise ValueError(f"step {step} cannot succeed while the saga is {saga.state}")
    done = replace(
        saga.with_status(step, StepStatus.DONE),
        attempts=0,
        error=None,
        error_class=None,
        in_doubt=False,
    )
    if tokens is not None:
        done = replace(done, dkim_tokens=tuple(tokens))
    return done


def step_failed(
    saga: ProvisioningSaga,
    step: Step,
    error: str,
    *,
    retryable: bool,
    no_effect: bool = False,
    error_class: str = "unknown",
    undo_attempts: int | None = None,
) -> ProvisioningSaga:
    """Outcome: the call for `step` (or its undo, while compensating) failed.

    Provisioning retries a retryable failure until `max_attempts` starts, then compensates;
    a non-retryable one compensates at once. `no_effect` says the outside system plainly
    refused the call; if no earlier try is in doubt, the step goes back to `pending`.
    Otherwise it stays `started` (it may have taken effect) and compensation undoes it.
    An undo, and every deprovisioning or receiving step, has no way back, only forward: a
    retryable failure (an outage) is retried without limit; any other stops the saga for an
    operator once the step has been tried `undo_attempts` times (None: never).
    """
    forward_only = saga.state is SagaState.COMPENSATING or saga.kind in (
        SagaKind.DEPROVISION,
        SagaKind.RECEIVE,
    )
    if forward_only:
        if saga.state is SagaState.COMPENSATING:
            _expect(saga, step, StepStatus.STARTED, StepStatus.DONE)
        else:
            _expect(saga, step, StepStatus.STARTED)
        if not retryable and undo_attempts is not None and saga.attempts >= undo_attempts:
            return replace(
                saga,
                state=SagaState.NEEDS_OPERATOR,
                failed_step=step,
                error=error,
                error_class=error_class,
            )
        if saga.state is SagaState.COMPENSATING:
            # `error` keeps what made the saga roll back: that is what the requester hears.
            return saga
        return replace(saga, error=error, error_class=error_class)
    _expect(saga, step, StepStatus.STARTED)
    if no_effect and not saga.in_doubt:
        failed = saga.with_status(step, StepStatus.PENDING)
    else:
        failed = replace(saga, in_doubt=True)
    if retryable and saga.attempts < saga.max_attempts:
        return replace(failed, error=error, error_class=error_class)
    return replace(
        failed,
        state=SagaState.COMPENSATING,
        failed_step=step,
        error=error,
        error_class=error_class,
        attempts=0,
        in_doubt=False,
    )


def undo_succeeded(saga: ProvisioningSaga, step: Step) -> ProvisioningSaga:
    """Outcome: `step` is undone (or was never in effect)."""
    if saga.state is not SagaState.COMPENSATING:
        raise ValueError(f"cannot undo {step}: saga is {saga.state}")
    _expect(saga, step, StepStatus.STARTED, StepStatus.DONE)
    return replace(saga.with_status(step, StepStatus.UNDONE), attempts=0, in_doubt=False)


def restarted(saga: ProvisioningSaga) -> ProvisioningSaga:
    """A stopped deprovisioning saga taken up again once an operator mended the cause: it
    carries on from the step that stopped it, with a fresh count of tries."""
    if saga.state is not SagaState.NEEDS_OPERATOR or saga.kind is not SagaKind.DEPROVISION:
        raise ValueError(f"only a stopped deprovisioning saga restarts, not {saga.state}")
    return replace(
        saga, state=SagaState.RUNNING, attempts=0, failed_step=None, error=None, error_class=None
    )


def finish(saga: ProvisioningSaga, action: Finish) -> ProvisioningSaga:
    """The saga's final state, to be committed with `action.events`."""
    if saga.finished:
        raise ValueError(f"saga for {saga.domain} is already {saga.state}")
    return replace(saga, state=action.state, attempts=0)


def backoff(retry: int, *, base: float, ceiling: float) -> float:
    """Seconds to wait before retry number `retry` (0: none)."""
    if retry <= 0:
        return 0.0
    return float(min(ceiling, base * 2 ** (retry - 1)))
