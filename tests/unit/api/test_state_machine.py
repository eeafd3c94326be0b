"""The domain state machine: every status × input pair, the seed's stories, and random walks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.state import (
    ALL_INPUTS,
    TRANSITIONS,
    ClaimedAway,
    DeletionRequested,
    Deprovisioned,
    DomainInput,
    DomainState,
    OwnershipSeen,
    Provisioned,
    ProvisioningRolledBack,
    ReceivingRequested,
    Released,
    Transition,
    TransitionRefused,
    VerificationFailed,
    VerificationInconclusive,
    VerificationPassed,
    goes_live_on_upgrade,
    ownership_seen,
    public_status,
    transition,
)
from domainflow.contracts.events import DomainStatus

S = DomainStatus
PENDING, VERIFIED, FAILED = S.PENDING, S.VERIFIED, S.FAILED
CHECKED = (PENDING, VERIFIED, FAILED)


def moved(new: DomainState, *, changed: bool, notify: bool = False) -> Transition:
    return Transition(new_state=new, changed_status=changed, notify_owners=notify)


def unchanged(state: DomainState) -> Transition:
    return moved(state, changed=False)


def on_pending_failure(state: DomainState) -> Transition:
    failures = state.consecutive_failures + 1
    if state.degraded and failures >= 2:
        return moved(DomainState(FAILED, failures, degraded=True), changed=True, notify=True)
    return moved(DomainState(PENDING, failures, state.degraded), changed=False)


def on_passed(state: DomainState) -> Transition:
    first_or_recovery = state.status is FAILED or (state.status is PENDING and not state.degraded)
    return moved(
        DomainState(VERIFIED),
        changed=state.status is not VERIFIED,
        notify=first_or_recovery,
    )


def to_deleting(state: DomainState) -> Transition:
    return moved(DomainState(S.DELETING, state.consecutive_failures, state.degraded), changed=True)


# The specification, written out independently of the module: what each accepted pair does.
Expected = Callable[[DomainState], Transition]
EXPECTED: dict[tuple[DomainStatus, type[DomainInput]], Expected] = {
    (S.PROVISIONING, Provisioned): lambda s: moved(DomainState(PENDING), changed=True),
    (S.PROVISIONING, ProvisioningRolledBack): lambda s: moved(DomainState(S.DELETED), changed=True),
    **{(status, VerificationPassed): on_passed for status in CHECKED},
    (VERIFIED, VerificationFailed): lambda s: moved(
        DomainState(PENDING, 1, degraded=True), changed=True
    ),
    (PENDING, VerificationFailed): on_pending_failure,
    (FAILED, VerificationFailed): lambda s: moved(
        DomainState(FAILED, s.consecutive_failures + 1, s.degraded), changed=False
    ),
    **{(status, VerificationInconclusive): unchanged for status in CHECKED},
    **{
        (status, ReceivingRequested): lambda s: moved(
            DomainState(PENDING), changed=s.status is not PENDING
        )
        for status in CHECKED
    },
    **{(status, DeletionRequested): to_deleting for status in CHECKED},
    (S.DELETING, DeletionRequested): unchanged,
    **{
        (status, ClaimedAway): lambda s: moved(
            DomainState(S.DELETING, s.consecutive_failures, s.degraded), changed=True, notify=True
        )
        for status in CHECKED
    },
    (S.DELETING, Deprovisioned): lambda s: moved(DomainState(S.DELETED), changed=True),
    # An operator clears a domain stuck on the way in or out; a settled one is deleted the
    # ordinary way (DeletionRequested).
    (S.PROVISIONING, Released): lambda s: moved(DomainState(S.DELETED), changed=True),
    (S.DELETING, Released): lambda s: moved(DomainState(S.DELETED), changed=True),
}

SAMPLE_STATES = [
    DomainState(status, failures, degraded)
    for status in S
    for failures in (0, 1, 2, 5)
    for degraded in (False, True)
]


def test_all_inputs_holds_one_of_each_kind() -> None:
    assert len({type(i) for i in ALL_INPUTS}) == len(ALL_INPUTS) == 10


@pytest.mark.parametrize("state", SAMPLE_STATES, ids=repr)
@pytest.mark.parametrize("event", ALL_INPUTS, ids=lambda i: type(i).__name__)
def test_every_status_and_input_moves_as_specified_or_is_refused(
    state: DomainState, event: DomainInput
) -> None:
    expected = EXPECTED.get((state.status, type(event)))
    if expected is None:
        with pytest.raises(TransitionRefused) as caught:
            transition(state, event)
        assert caught.value.status is state.status
        assert caught.value.input == event
        assert caught.value.message
        return
    result = transition(state, event)
    assert result == expected(state)
    assert result.new_state.status in TRANSITIONS[(state.status, type(event))]


def test_the_module_table_matches_the_specification() -> None:
    assert set(TRANSITIONS) == set(EXPECTED)


@pytest.mark.parametrize(
    ("state", "event", "phrase"),
    [
        (DomainState(S.PROVISIONING), DeletionRequested(), "still being provisioned"),
        (DomainState(S.PROVISIONING), VerificationPassed(), "still being provisioned"),
        (DomainState(S.DELETING), VerificationFailed(), "ignored"),
        (DomainState(S.DELETING), VerificationInconclusive(), "ignored"),
        (DomainState(S.DELETED), DeletionRequested(), "deleted"),
        (DomainState(VERIFIED), Deprovisioned(), "Deprovisioned does not apply"),
    ],
)
def test_refusals_say_why(state: DomainState, event: DomainInput, phrase: str) -> None:
    with pytest.raises(TransitionRefused, match=phrase):
        transition(state, event)


def run(state: DomainState, *events: DomainInput) -> tuple[DomainState, list[Transition]]:
    steps = []
    for event in events:
        step = transition(state, event)
        steps.append(step)
        state = step.new_state
    return state, steps


def test_seed_story_a_verified_domain_that_stays_broken_emails_once() -> None:
    fail = VerificationFailed()
    state, steps = run(DomainState(VERIFIED), fail, fail, fail, fail)
    assert [s.new_state.status for s in steps] == [PENDING, FAILED, FAILED, FAILED]
    assert [s.notify_owners for s in steps] == [False, True, False, False]
    assert state.consecutive_failures == 4


def test_seed_story_a_single_blip_is_silent_both_ways() -> None:
    state, steps = run(DomainState(VERIFIED), VerificationFailed(), VerificationPassed())
    assert state == DomainState(VERIFIED)
    assert [s.notify_owners for s in steps] == [False, False]


def test_seed_story_an_inconclusive_cycle_neither_counts_nor_forgives() -> None:
    fail, unsure = VerificationFailed(), VerificationInconclusive()
    state, steps = run(DomainState(VERIFIED), fail, unsure, unsure, fail)
    assert state.status is FAILED
    assert steps[-1].notify_owners


def test_seed_story_a_never_verified_domain_just_stays_pending() -> None:
    state, steps = run(DomainState(PENDING), *[VerificationFailed()] * 10)
    assert state == DomainState(PENDING, 10, degraded=False)
    assert not any(s.notify_owners or s.changed_status for s in steps)


def test_seed_story_first_verification_and_recovery_tell_the_owners() -> None:
    _, [first] = run(DomainState(PENDING), VerificationPassed())
    assert first.notify_owners
    _, [recovered] = run(DomainState(FAILED, 3, degraded=True), VerificationPassed())
    assert recovered.notify_owners
    assert recovered.new_state == DomainState(VERIFIED)


def test_the_whole_life_of_a_domain() -> None:
    _, steps = run(
        DomainState(S.PROVISIONING),
        Provisioned(),
        VerificationPassed(),
        DeletionRequested(),
        DeletionRequested(),
        Deprovisioned(),
    )
    assert [s.new_state.status for s in steps] == [
        PENDING,
        VERIFIED,
        S.DELETING,
        S.DELETING,
        S.DELETED,
    ]
    assert [s.changed_status for s in steps] == [True, True, True, False, True]


def test_failures_are_never_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        DomainState(PENDING, -1)


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (S.PROVISIONING, "pending"),
        (S.PENDING, "pending"),
        (S.VERIFIED, "verified"),
        (S.FAILED, "failed"),
        (S.DELETING, "pending"),
    ],
)
def test_public_status(status: DomainStatus, shown: str) -> None:
    assert public_status(status) == shown


def test_a_deleted_domain_has_no_public_status() -> None:
    with pytest.raises(ValueError, match="404"):
        public_status(S.DELETED)


@dataclass
class Walk:
    """What a random walk has seen so far."""

    ever_verified: bool = False
    failure_emails_this_streak: int = 0
    log: list[str] = field(default_factory=list)


@given(st.lists(st.sampled_from(ALL_INPUTS), max_size=60))
def test_random_walks_keep_the_promises(events: list[DomainInput]) -> None:
    state = DomainState(S.PROVISIONING)
    walk = Walk()
    for event in events:
        try:
            step = transition(state, event)
        except TransitionRefused:
            continue
        new = step.new_state
        assert step.changed_status == (new.status is not state.status)
        assert new.consecutive_failures >= 0
        if isinstance(event, VerificationPassed):
            # A passed verification always resets the counter.
            assert new == DomainState(VERIFIED)
            walk.failure_emails_this_streak = 0
        if isinstance(event, VerificationInconclusive):
            assert new == state
            assert not step.notify_owners
        if step.notify_owners and new.status is FAILED:
            walk.failure_emails_this_streak += 1
        # Never more than one email per failure streak.
        assert walk.failure_emails_this_streak <= 1
        # Only a domain that once worked can be failed (a new one just stays pending).
        if new.status is FAILED:
            assert walk.ever_verified
        if new.status is VERIFIED:
            walk.ever_verified = True
        # Owners are only ever told about a failure, a (first or regained) verification, or
        # a name another team claimed away from them.
        if step.notify_owners:
            assert new.status in (FAILED, VERIFIED) or isinstance(event, ClaimedAway)
        state = new
    if state.status is S.DELETED:
        for event in ALL_INPUTS:
            with pytest.raises(TransitionRefused):
                transition(state, event)


@given(
    st.sampled_from(list(S)),
    st.integers(min_value=0, max_value=1000),
    st.booleans(),
    st.sampled_from(ALL_INPUTS),
)
def test_transition_is_total(
    status: DomainStatus, failures: int, degraded: bool, event: DomainInput
) -> None:
    state = DomainState(status, failures, degraded)
    try:
        result = transition(state, event)
    except TransitionRefused:
        assert (status, type(event)) not in TRANSITIONS
        return
    assert result == EXPECTED[(status, type(event))](state)


# --- not live before proven ---------------------------------------------------------------


@pytest.mark.parametrize("status", list(S), ids=str)
@pytest.mark.parametrize("proven", [False, True], ids=["unproven", "proven"])
@pytest.mark.parametrize("receives", [False, True], ids=["send_only", "send_receive"])
@pytest.mark.parametrize("txt_passed", [False, True], ids=["txt_absent", "txt_seen"])
def test_a_domain_goes_live_once_the_first_time_its_ownership_txt_is_seen(
    status: DomainStatus, proven: bool, receives: bool, txt_passed: bool
) -> None:
    seen = ownership_seen(status, proven=proven, receives=receives, txt_passed=txt_passed)
    # Written out: only a checked domain's verification counts; proof is for ever; the
    # mail server is asked once, on the first proof, and only for a domain that receives.
    first_proof = status in CHECKED and not proven and txt_passed
    assert seen == OwnershipSeen(proven=proven or first_proof, goes_live=first_proof and receives)


def test_a_domain_that_never_shows_its_txt_never_goes_live() -> None:
    state, proven = DomainState(PENDING), False
    for happened, txt in [(VerificationFailed(), False)] * 5 + [
        (VerificationInconclusive(), False)
    ]:
        seen = ownership_seen(state.status, proven=proven, receives=True, txt_passed=txt)
        assert not seen.goes_live
        proven = seen.proven
        state = transition(state, happened).new_state
    assert not proven


def test_a_domain_goes_live_at_its_first_proof_and_never_again() -> None:
    lives = []
    proven = False
    # TXT seen with other records failing, then verified, blipping, failed, recovered.
    for status, txt in [
        (PENDING, False),
        (PENDING, True),
        (PENDING, True),
        (VERIFIED, False),
        (PENDING, False),
        (FAILED, True),
        (VERIFIED, True),
    ]:
        seen = ownership_seen(status, proven=proven, receives=True, txt_passed=txt)
        lives.append(seen.goes_live)
        proven = seen.proven
    assert lives == [False, True, False, False, False, False, False]


@pytest.mark.parametrize("proven", [False, True])
def test_an_upgrade_goes_live_at_once_only_when_already_proven(proven: bool) -> None:
    assert goes_live_on_upgrade(proven=proven) is proven
