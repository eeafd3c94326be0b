"""Which happenings earn a line on a domain's timeline (pure rules)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.timeline import failing_of, worth_noting

RECORDS = ("mx", "verification_txt", "spf", "dmarc")
REASONS = (None, "record_missing", "value_mismatch", "resolver_unavailable")
checks = st.lists(
    st.fixed_dictionaries(
        {
            "record": st.sampled_from(RECORDS),
            "outcome": st.sampled_from(("pass", "fail", "inconclusive")),
            "reason": st.sampled_from(REASONS),
        }
    ),
    max_size=6,
)


def test_failing_keeps_what_did_not_pass_with_its_reason() -> None:
    seen: list[dict[str, str | None]] = [
        {"record": "mx", "outcome": "pass", "reason": None},
        {"record": "spf", "outcome": "fail", "reason": "multiple_spf_records"},
        {"record": "dmarc", "outcome": "inconclusive", "reason": "resolver_unavailable"},
    ]
    assert failing_of(seen) == {("spf", "multiple_spf_records"), ("dmarc", "resolver_unavailable")}
    assert failing_of(None) == frozenset()


@given(checks, st.permutations(range(6)))
def test_the_order_checks_arrive_in_does_not_matter(
    seen: list[dict[str, str]], order: list[int]
) -> None:
    shuffled = [seen[i] for i in order if i < len(seen)]
    assert failing_of(shuffled) == failing_of(seen)


@given(st.sampled_from(("passed", "failed", "inconclusive")), checks)
def test_the_same_verdict_again_is_not_noted(outcome: str, seen: list[dict[str, str]]) -> None:
    same = failing_of(seen)
    assert not worth_noting(
        changed_status=False,
        asked_for=False,
        outcome=outcome,
        previous_outcome=outcome,
        failing=same,
        previous_failing=same,
    )


@given(st.booleans(), st.booleans(), checks, checks)
def test_a_status_change_or_an_asked_for_probe_is_always_noted(
    changed: bool, asked: bool, now: list[dict[str, str]], before: list[dict[str, str]]
) -> None:
    noted = worth_noting(
        changed_status=changed,
        asked_for=asked,
        outcome="failed",
        previous_outcome="failed",
        failing=failing_of(now),
        previous_failing=failing_of(before),
    )
    if changed or asked:
        assert noted
    else:
        assert noted == (failing_of(now) != failing_of(before))


def test_a_new_reason_for_the_same_record_is_a_change() -> None:
    assert worth_noting(
        changed_status=False,
        asked_for=False,
        outcome="failed",
        previous_outcome="failed",
        failing=frozenset({("spf", "multiple_spf_records")}),
        previous_failing=frozenset({("spf", "record_missing")}),
    )
