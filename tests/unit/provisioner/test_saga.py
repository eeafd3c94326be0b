"""The pure provisioning saga: every step failing at every point, crashes, and random runs.

A small simulated world (the mail server's table, SES's identity and MAIL FROM setting)
receives the saga's calls, so the tests judge the outcome by what is left *out there*,
not only by the saga's own bookkeeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainflow.contracts import (
    DomainDeprovisioned,
    DomainProvisioned,
    ProvisioningRolledBack,
    SagaNeedsOperator,
)
from domainflow.provisioner.domain import (
    DoStep,
    Finish,
    Idle,
    ProvisioningSaga,
    SagaKind,
    SagaState,
    Step,
    StepStatus,
    UndoStep,
    backoff,
    finish,
    next_action,
    refusal,
    restarted,
    result_events,
    step_failed,
    step_started,
    step_succeeded,
    undo_started,
    undo_succeeded,
)

TOKENS = ["tok1", "tok2", "tok3"]
CAUSE = uuid.UUID("00000000-0000-0000-0000-000000000001")


class Outcome(Enum):
    OK = "ok"
    RETRYABLE = "retryable"  # plainly refused, nothing happened (throttled)
    RETRYABLE_IN_DOUBT = "retryable_in_doubt"  # timed out before taking effect
    RETRYABLE_AFTER_EFFECT = "retryable_after_effect"  # timed out after taking effect
    FATAL = "fatal"  # refused for good, nothing happened
    CRASH_BEFORE_CALL = "crash_before_call"  # intent persisted, replica died
    CRASH_AFTER_CALL = "crash_after_call"  # call took effect, outcome never persisted


@dataclass
class World:
    """What the outside systems hold for the domain."""

    mailserver: bool = False
    identity: bool = False
    mail_from: bool = False
    calls: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.mailserver or self.identity or self.mail_from)

    def apply(self, step: Step) -> None:
        self.calls.append(f"do:{step}")
        if step is Step.MAILSERVER:
            self.mailserver = True
        elif step is Step.SES_IDENTITY:
            self.identity = True
        else:
            assert self.identity, "MAIL FROM set on an identity that does not exist"
            self.mail_from = True

    def remove(self, step: Step) -> None:
        self.calls.append(f"undo:{step}")
        if step is Step.MAILSERVER:
            self.mailserver = False
        elif step is Step.SES_IDENTITY:
            # Deleting the identity takes its MAIL FROM setting with it.
            self.identity = False
            self.mail_from = False
        # MAIL FROM alone needs no undo: the identity's deletion, next, removes it.


def new_saga(
    kind: SagaKind = SagaKind.PROVISION, *, mail_from: bool = True, max_attempts: int = 3
) -> ProvisioningSaga:
    return ProvisioningSaga.start(
        kind=kind,
        domain_id="mdom_1",
        team_id="team_1",
        domain="mail.acme.com",
        region="us-east-1",
        mail_from_domain="bounce.mail.acme.com" if mail_from else None,
        correlation_id="req_1",
        causation_id=CAUSE,
        max_attempts=max_attempts,
    )


@dataclass
class Run:
    saga: ProvisioningSaga
    world: World
    finished_with: Finish | None
    crashes: int


def drive(
    saga: ProvisioningSaga, world: World, outcomes: Iterator[Outcome], *, limit: int = 500
) -> Run:
    """Play the runner: each call consumes the next outcome (OK once they run out)."""
    crashes = 0
    for _ in range(limit):
        action = next_action(saga)
        if isinstance(action, Idle):
            return Run(saga, world, None, crashes)
        if isinstance(action, Finish):
            return Run(finish(saga, action), world, action, crashes)
        outcome = next(outcomes, Outcome.OK)
        undo = isinstance(action, UndoStep)
        saga = undo_started(saga, action.step) if undo else step_started(saga, action.step)
        if outcome is Outcome.CRASH_BEFORE_CALL:
            crashes += 1
            continue  # the persisted intent is all the next replica finds
        removing = undo or saga.kind is SagaKind.DEPROVISION
        effect = outcome in (Outcome.OK, Outcome.RETRYABLE_AFTER_EFFECT, Outcome.CRASH_AFTER_CALL)
        if effect:
            (world.remove if removing else world.apply)(action.step)
        if outcome is Outcome.CRASH_AFTER_CALL:
            crashes += 1
            continue
        if outcome is Outcome.OK:
            if undo:
                saga = undo_succeeded(saga, action.step)
            else:
                tokens = TOKENS if action.step is Step.SES_IDENTITY and not removing else None
                saga = step_succeeded(saga, action.step, tokens)
        else:
            saga = step_failed(
                saga,
                action.step,
                f"{outcome.value} error",
                retryable=outcome is not Outcome.FATAL,
                no_effect=outcome in (Outcome.RETRYABLE, Outcome.FATAL),
                error_class=f"test:{outcome.value}",
            )
    raise AssertionError(f"saga did not finish in {limit} actions: {saga}")


def assert_converged(run: Run) -> None:
    """Completed with everything in place, or rolled back with nothing left anywhere."""
    saga, world = run.saga, run.world
    assert run.finished_with is not None
    assert saga.state is run.finished_with.state
    (event,) = run.finished_with.events
    assert event.causation_id == CAUSE
    assert event.correlation_id == "req_1"
    if saga.kind is SagaKind.DEPROVISION:
        assert saga.state is SagaState.COMPLETED
        assert all(status is StepStatus.DONE for _, status in saga.steps)
        assert world.empty()
        assert isinstance(event, DomainDeprovisioned)
        return
    if saga.state is SagaState.COMPLETED:
        assert all(status is StepStatus.DONE for _, status in saga.steps)
        assert world.mailserver
        assert world.identity
        assert world.mail_from == (saga.mail_from_domain is not None)
        assert isinstance(event, DomainProvisioned)
        assert event.dkim_tokens == TOKENS
        assert event.mail_from_domain == saga.mail_from_domain
    else:
        assert saga.state is SagaState.ROLLED_BACK
        assert not any(s in (StepStatus.STARTED, StepStatus.DONE) for _, s in saga.steps)
        assert world.empty(), world
        assert isinstance(event, ProvisioningRolledBack)
        assert saga.failed_step is not None
        assert event.failed_step == saga.failed_step.value
        assert "undone" in event.reason


# --- the happy paths ---------------------------------------------------------------------


@pytest.mark.parametrize("mail_from", [True, False])
def test_provisioning_runs_the_steps_in_order_and_reports_the_tokens(mail_from: bool) -> None:
    run = drive(new_saga(mail_from=mail_from), World(), iter([]))
    expected = ["do:mailserver", "do:ses_identity"] + (["do:mail_from"] if mail_from else [])
    assert run.world.calls == expected
    assert run.saga.state is SagaState.COMPLETED
    assert run.saga.dkim_tokens == tuple(TOKENS)
    assert_converged(run)


def test_without_mail_from_there_is_no_mail_from_step() -> None:
    assert [s for s, _ in new_saga(mail_from=False).steps] == [Step.MAILSERVER, Step.SES_IDENTITY]


def test_deprovisioning_removes_identity_then_mail_server() -> None:
    world = World(mailserver=True, identity=True, mail_from=True)
    run = drive(new_saga(SagaKind.DEPROVISION), world, iter([]))
    assert world.calls == ["undo:ses_identity", "undo:mailserver"]
    assert_converged(run)


def test_intent_is_recorded_before_the_call_and_outcome_after() -> None:
    saga = new_saga()
    action = next_action(saga)
    assert action == DoStep(Step.MAILSERVER, retry=0)
    started = step_started(saga, Step.MAILSERVER)
    assert started.status(Step.MAILSERVER) is StepStatus.STARTED
    assert started.attempts == 1
    done = step_succeeded(started, Step.MAILSERVER)
    assert done.status(Step.MAILSERVER) is StepStatus.DONE
    assert done.attempts == 0
    assert next_action(done) == DoStep(Step.SES_IDENTITY, retry=0)


def test_a_finished_saga_is_idle() -> None:
    run = drive(new_saga(), World(), iter([]))
    assert next_action(run.saga) == Idle()
    with pytest.raises(ValueError, match="saga is completed"):
        step_started(run.saga, Step.MAILSERVER)


# --- every step failing at every point ----------------------------------------------------

#: Every (has a MAIL FROM domain, step that fails) pair there is.
FAILING_STEPS = [
    (True, Step.MAILSERVER),
    (True, Step.SES_IDENTITY),
    (True, Step.MAIL_FROM),
    (False, Step.MAILSERVER),
    (False, Step.SES_IDENTITY),
]


def outcomes_failing_at(step_index: int, failure: Outcome, times: int) -> list[Outcome]:
    return [Outcome.OK] * step_index + [failure] * times


@pytest.mark.parametrize(("mail_from", "failing"), FAILING_STEPS)
@pytest.mark.parametrize("failure", [Outcome.FATAL])
def test_a_non_retryable_failure_compensates_at_once(
    mail_from: bool, failing: Step, failure: Outcome
) -> None:
    saga = new_saga(mail_from=mail_from)
    steps = [s for s, _ in saga.steps]
    index = steps.index(failing)
    run = drive(saga, World(), iter(outcomes_failing_at(index, failure, 1)))
    assert run.saga.state is SagaState.ROLLED_BACK
    assert run.saga.failed_step is failing
    # Each earlier step undone, newest first; the refused one never took effect.
    undo_calls = [c for c in run.world.calls if c.startswith("undo:")]
    assert undo_calls == [f"undo:{s}" for s in reversed(steps[:index])]
    assert_converged(run)


@pytest.mark.parametrize(("mail_from", "failing"), FAILING_STEPS)
@pytest.mark.parametrize("doubt", [Outcome.RETRYABLE_IN_DOUBT, Outcome.CRASH_BEFORE_CALL])
def test_a_step_once_in_doubt_is_undone_even_if_later_refused(
    mail_from: bool, failing: Step, doubt: Outcome
) -> None:
    saga = new_saga(mail_from=mail_from)
    steps = [s for s, _ in saga.steps]
    index = steps.index(failing)
    outcomes = [*outcomes_failing_at(index, doubt, 1), Outcome.FATAL]
    run = drive(saga, World(), iter(outcomes))
    assert run.saga.state is SagaState.ROLLED_BACK
    undo_calls = [c for c in run.world.calls if c.startswith("undo:")]
    assert undo_calls == [f"undo:{s}" for s in reversed(steps[: index + 1])]
    assert_converged(run)


def test_a_plain_refusal_leaves_nothing_to_undo() -> None:
    saga = step_started(new_saga(), Step.MAILSERVER)
    refused = step_failed(saga, Step.MAILSERVER, "throttled", retryable=True, no_effect=True)
    assert refused.status(Step.MAILSERVER) is StepStatus.PENDING
    timed_out = step_failed(saga, Step.MAILSERVER, "timeout", retryable=True)
    assert timed_out.status(Step.MAILSERVER) is StepStatus.STARTED
    assert timed_out.in_doubt
    again = step_failed(
        step_started(timed_out, Step.MAILSERVER),
        Step.MAILSERVER,
        "no",
        retryable=False,
        no_effect=True,
    )
    assert again.state is SagaState.COMPENSATING
    assert next_action(again) == UndoStep(Step.MAILSERVER, retry=0)


@pytest.mark.parametrize(("mail_from", "failing"), FAILING_STEPS)
@pytest.mark.parametrize(
    "failure", [Outcome.RETRYABLE, Outcome.RETRYABLE_IN_DOUBT, Outcome.RETRYABLE_AFTER_EFFECT]
)
def test_a_retryable_failure_is_retried_up_to_the_bound(
    mail_from: bool, failing: Step, failure: Outcome
) -> None:
    saga = new_saga(mail_from=mail_from, max_attempts=3)
    steps = [s for s, _ in saga.steps]
    index = steps.index(failing)
    # Two failures, then success on the third (last allowed) try.
    recovered = drive(saga, World(), iter(outcomes_failing_at(index, failure, 2)))
    assert recovered.saga.state is SagaState.COMPLETED
    calls_that_reached = 3 if failure is Outcome.RETRYABLE_AFTER_EFFECT else 1
    assert recovered.world.calls.count(f"do:{failing}") == calls_that_reached
    assert_converged(recovered)
    # Three failures use up the budget: compensate.
    exhausted = drive(saga, World(), iter(outcomes_failing_at(index, failure, 3)))
    assert exhausted.saga.state is SagaState.ROLLED_BACK
    assert exhausted.saga.failed_step is failing
    assert exhausted.finished_with is not None
    (event,) = exhausted.finished_with.events
    assert isinstance(event, ProvisioningRolledBack)
    assert f"test:{failure.value}" in event.reason  # the class, not the words
    assert f"{failure.value} error" not in event.reason
    assert_converged(exhausted)


def test_retries_report_how_many_came_before() -> None:
    saga = step_started(new_saga(), Step.MAILSERVER)
    saga = step_failed(saga, Step.MAILSERVER, "timed out", retryable=True)
    assert saga.state is SagaState.RUNNING
    assert saga.status(Step.MAILSERVER) is StepStatus.STARTED
    assert next_action(saga) == DoStep(Step.MAILSERVER, retry=1)
    assert saga.error == "timed out"


@pytest.mark.parametrize(
    "undo_failure", [Outcome.RETRYABLE, Outcome.FATAL, Outcome.CRASH_BEFORE_CALL]
)
def test_an_undo_that_fails_is_retried_until_it_succeeds(undo_failure: Outcome) -> None:
    outcomes = [Outcome.OK, Outcome.FATAL] + [undo_failure] * 10  # SES refuses, undo stalls
    run = drive(new_saga(mail_from=False), World(), iter(outcomes))
    assert run.saga.state is SagaState.ROLLED_BACK
    assert run.saga.failed_step is Step.SES_IDENTITY
    assert run.saga.error == "fatal error"  # the cause, not the undo's troubles
    assert_converged(run)


@pytest.mark.parametrize("failure", [Outcome.RETRYABLE, Outcome.FATAL, Outcome.CRASH_AFTER_CALL])
def test_deprovisioning_never_rolls_back_it_retries(failure: Outcome) -> None:
    world = World(mailserver=True, identity=True, mail_from=True)
    run = drive(new_saga(SagaKind.DEPROVISION, max_attempts=2), world, iter([failure] * 25))
    assert run.saga.state is SagaState.COMPLETED
    assert_converged(run)


def test_deprovisioning_exposes_its_attempts() -> None:
    saga = new_saga(SagaKind.DEPROVISION, max_attempts=1)
    for n in range(1, 6):
        saga = step_started(saga, Step.SES_IDENTITY)
        saga = step_failed(saga, Step.SES_IDENTITY, "ServiceUnavailable", retryable=False)
        assert saga.attempts == n
        assert saga.state is SagaState.RUNNING
    assert next_action(saga) == DoStep(Step.SES_IDENTITY, retry=5)


# --- crashes: re-entry after any recorded intent ---------------------------------------------


def happy_trace(saga: ProvisioningSaga) -> list[ProvisioningSaga]:
    """Every state a replica persists on the happy path (intent, then outcome, per step)."""
    trace = [saga]
    while isinstance(action := next_action(saga), DoStep):
        saga = step_started(saga, action.step)
        trace.append(saga)
        saga = step_succeeded(
            saga, action.step, TOKENS if action.step is Step.SES_IDENTITY else None
        )
        trace.append(saga)
    return trace


def world_after(saga: ProvisioningSaga, *, intent_took_effect: bool) -> World:
    world = World()
    for step, status in saga.steps:
        if status is StepStatus.DONE or (status is StepStatus.STARTED and intent_took_effect):
            (world.remove if saga.kind is SagaKind.DEPROVISION else world.apply)(step)
    world.calls.clear()
    return world


@pytest.mark.parametrize("mail_from", [True, False])
@pytest.mark.parametrize("took_effect", [True, False])
def test_a_crash_after_any_persisted_state_converges_on_reentry(
    mail_from: bool, took_effect: bool
) -> None:
    for persisted in happy_trace(new_saga(mail_from=mail_from)):
        world = world_after(persisted, intent_took_effect=took_effect)
        run = drive(persisted, world, iter([]))
        assert run.saga.state is SagaState.COMPLETED  # a started step is simply redone
        assert_converged(run)


@pytest.mark.parametrize("took_effect", [True, False])
def test_a_crash_during_compensation_finishes_the_rollback(took_effect: bool) -> None:
    saga = new_saga()
    saga = step_succeeded(step_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    saga = step_started(saga, Step.SES_IDENTITY)
    world = World(mailserver=True, identity=took_effect)
    saga = step_failed(saga, Step.SES_IDENTITY, "AccessDenied", retryable=False)
    assert saga.state is SagaState.COMPENSATING
    assert next_action(saga) == UndoStep(Step.SES_IDENTITY, retry=0)
    saga = undo_started(saga, Step.SES_IDENTITY)  # intent persisted, then the replica died
    run = drive(saga, world, iter([]))
    assert_converged(run)
    assert run.saga.state is SagaState.ROLLED_BACK


def test_a_deprovisioning_crash_converges() -> None:
    trace = happy_trace(new_saga(SagaKind.DEPROVISION))
    for persisted in trace:
        world = World(mailserver=True, identity=True)
        for step, status in persisted.steps:
            if status is StepStatus.DONE:
                world.remove(step)
        run = drive(persisted, world, iter([]))
        assert_converged(run)


# --- invariants ---------------------------------------------------------------------------


def test_transitions_refuse_out_of_order_calls() -> None:
    saga = new_saga()
    with pytest.raises(ValueError, match="expected"):
        step_succeeded(saga, Step.MAILSERVER)  # no intent recorded
    with pytest.raises(ValueError, match="cannot undo"):
        undo_started(saga, Step.MAILSERVER)
    with pytest.raises(KeyError):
        new_saga(mail_from=False).status(Step.MAIL_FROM)
    with pytest.raises(ValueError, match="max_attempts"):
        new_saga(max_attempts=0)


def test_result_events_can_answer_a_later_request() -> None:
    run = drive(new_saga(), World(), iter([]))
    again = DomainProvisioned(
        correlation_id="req_2",
        team_id="team_1",
        domain_id="mdom_1",
        domain="mail.acme.com",
        region="us-east-1",
        dkim_tokens=[],
    )
    (event,) = result_events(run.saga, run.saga.state, answering=again)
    assert event.causation_id == again.event_id
    assert event.correlation_id == "req_2"


def test_backoff_grows_and_is_capped() -> None:
    assert backoff(0, base=0.5, ceiling=8) == 0
    assert [backoff(n, base=0.5, ceiling=8) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


# --- random failure sequences ---------------------------------------------------------------

outcome_lists = st.lists(st.sampled_from(list(Outcome)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(
    outcomes=outcome_lists,
    mail_from=st.booleans(),
    max_attempts=st.integers(min_value=1, max_value=4),
)
def test_any_failure_sequence_ends_all_done_or_all_undone(
    outcomes: list[Outcome], mail_from: bool, max_attempts: int
) -> None:
    run = drive(new_saga(mail_from=mail_from, max_attempts=max_attempts), World(), iter(outcomes))
    assert_converged(run)
    assert next_action(run.saga) == Idle()


@settings(max_examples=200, deadline=None)
@given(
    outcomes=outcome_lists,
    start=st.fixed_dictionaries(
        {"mailserver": st.booleans(), "identity": st.booleans(), "mail_from": st.booleans()}
    ),
)
def test_any_failure_sequence_deprovisions_completely(
    outcomes: list[Outcome], start: dict[str, bool]
) -> None:
    world = World(
        mailserver=start["mailserver"],
        identity=start["identity"],
        mail_from=start["identity"] and start["mail_from"],
    )
    run = drive(new_saga(SagaKind.DEPROVISION), world, iter(outcomes))
    assert_converged(run)


def _start(kind: SagaKind, *, receives: bool = True) -> ProvisioningSaga:
    return ProvisioningSaga.start(
        kind=kind,
        domain_id="mdom_1",
        team_id="team_1",
        domain="mail.acme.com",
        region="us-east-1",
        mail_from_domain="send.mail.acme.com" if kind is SagaKind.PROVISION else None,
        correlation_id="req_1",
        causation_id=uuid.uuid4(),
        max_attempts=2,
        receives=receives,
    )


def test_a_send_only_domain_never_goes_on_the_mail_server() -> None:
    steps = [step for step, _ in _start(SagaKind.PROVISION, receives=False).steps]
    assert steps == [Step.SES_IDENTITY, Step.MAIL_FROM]
    steps = [step for step, _ in _start(SagaKind.PROVISION).steps]
    assert steps == [Step.MAILSERVER, Step.SES_IDENTITY, Step.MAIL_FROM]


def test_an_upgrade_adds_the_domain_to_the_mail_server_forward_only() -> None:
    saga = _start(SagaKind.RECEIVE)
    assert [step for step, _ in saga.steps] == [Step.MAILSERVER]
    started = step_started(saga, Step.MAILSERVER)
    for _ in range(5):  # past max_attempts: still forward, never compensating
        started = step_failed(started, Step.MAILSERVER, "refused", retryable=False)
        assert started.state is SagaState.RUNNING
        started = step_started(started, Step.MAILSERVER)
    done = step_succeeded(started, Step.MAILSERVER)
    assert result_events(done, SagaState.COMPLETED) == ()  # the api moved the domain already


# --- a saga that cannot go on stops for an operator ----------------------------------------


def _fail(saga: ProvisioningSaga, step: Step, *, retryable: bool) -> ProvisioningSaga:
    return step_failed(
        saga,
        step,
        "Amazon SES answered AccessDenied: User arn:aws:iam::123456789012:user/x is not allowed",
        retryable=retryable,
        error_class="ses:AccessDenied",
        undo_attempts=3,
    )


def _compensating() -> ProvisioningSaga:
    saga = new_saga(mail_from=False)
    saga = step_succeeded(step_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    saga = step_started(saga, Step.SES_IDENTITY)
    saga = step_failed(
        saga,
        Step.SES_IDENTITY,
        "Amazon SES answered InvalidParameterValue: arn:aws:ses:us-east-1:123456789012",
        retryable=False,
        no_effect=True,  # refused: only the mail server's step is left to undo
        error_class="ses:InvalidParameterValue",
    )
    assert saga.state is SagaState.COMPENSATING
    return saga


def test_an_undo_refused_for_good_stops_the_saga_for_an_operator() -> None:
    saga = _compensating()
    for attempt in range(1, 4):
        assert next_action(saga) == UndoStep(Step.MAILSERVER, retry=attempt - 1)
        saga = _fail(undo_started(saga, Step.MAILSERVER), Step.MAILSERVER, retryable=False)
    assert saga.state is SagaState.NEEDS_OPERATOR
    assert saga.finished
    assert next_action(saga) == Idle()
    assert (saga.failed_step, saga.error_class) == (Step.MAILSERVER, "ses:AccessDenied")
    (event,) = result_events(saga, saga.state)
    assert isinstance(event, SagaNeedsOperator)
    assert (event.saga, event.step, event.error_class) == (
        "provision",
        "mailserver",
        "ses:AccessDenied",
    )
    assert "arn:" not in event.model_dump_json()


def test_an_undo_failing_on_an_outage_is_retried_past_the_bound() -> None:
    saga = _compensating()
    for _ in range(20):
        saga = _fail(undo_started(saga, Step.MAILSERVER), Step.MAILSERVER, retryable=True)
    assert saga.state is SagaState.COMPENSATING
    saga = undo_succeeded(undo_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    action = next_action(saga)
    assert isinstance(action, Finish)
    assert action.state is SagaState.ROLLED_BACK


@pytest.mark.parametrize("kind", [SagaKind.DEPROVISION, SagaKind.RECEIVE])
def test_a_removal_or_receiving_step_refused_for_good_stops_too(kind: SagaKind) -> None:
    saga = new_saga(kind)
    step = saga.steps[0][0]
    for _ in range(3):
        assert saga.state is SagaState.RUNNING
        saga = _fail(step_started(saga, step), step, retryable=False)
    assert saga.state is SagaState.NEEDS_OPERATOR
    (event,) = result_events(saga, saga.state)
    assert isinstance(event, SagaNeedsOperator)
    assert (event.saga, event.step) == (kind.value, step.value)


def test_a_stopped_removal_restarts_where_it_stopped() -> None:
    saga = new_saga(SagaKind.DEPROVISION)
    saga = step_succeeded(step_started(saga, Step.SES_IDENTITY), Step.SES_IDENTITY)
    for _ in range(3):
        saga = _fail(step_started(saga, Step.MAILSERVER), Step.MAILSERVER, retryable=False)
    assert saga.state is SagaState.NEEDS_OPERATOR
    again = restarted(saga)
    assert (again.state, again.attempts, again.error_class) == (SagaState.RUNNING, 0, None)
    assert next_action(again) == DoStep(Step.MAILSERVER, retry=0)
    with pytest.raises(ValueError, match="only a stopped deprovisioning saga"):
        restarted(again)


def test_the_rollback_reason_names_the_step_and_error_class_never_the_providers_words() -> None:
    saga = _compensating()
    saga = undo_succeeded(undo_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    action = next_action(saga)
    assert isinstance(action, Finish)
    (event,) = action.events
    assert isinstance(event, ProvisioningRolledBack)
    assert event.failed_step == "ses_identity"
    assert "ses:InvalidParameterValue" in event.reason
    assert "123456789012" not in event.model_dump_json()
    assert "123456789012" in (saga.error or "")  # kept for the log


@pytest.mark.parametrize(
    ("domain", "region", "mail_from", "said"),
    [
        ("mail.acme.com", "us-east-1\n", None, "region"),
        ("mail.acme.com", "mars", None, "region"),
        ("mail.acme.com", "us-east-1", "bounce.mail.acme.com\r\n", "bounce"),
        ("Mail.acme.com", "us-east-1", None, "A-label"),
        ("localhost", "us-east-1", None, "A-label"),
        ("-x.acme.com", "us-east-1", None, "A-label"),
    ],
)
def test_a_request_no_saga_could_carry_out_is_refused_with_why(
    domain: str, region: str, mail_from: str | None, said: str
) -> None:
    refused = refusal(domain, region, mail_from)
    assert refused is not None
    assert said in refused


@pytest.mark.parametrize(
    ("domain", "region"),
    [("mail.acme.com", "us-east-1"), ("xn--bcher-kva.example", "ap-southeast-2"),
     ("a.b", "us-gov-west-1")],
)  # fmt: skip
def test_a_request_as_the_api_writes_it_is_carried_out(domain: str, region: str) -> None:
    assert refusal(domain, region, f"send.{domain}") is None
