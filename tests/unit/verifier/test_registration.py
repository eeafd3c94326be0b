"""The registration watch's rules: RDAP expiry, nameserver moves, the 30-day notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domainflow.verifier.registration import (
    Registration,
    nameserver_set,
    rdap_expiry,
    watch_warnings,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
OLD = ("ns1.old.net", "ns2.old.net")


def codes(before: Registration | None, now: Registration) -> list[str]:
    return [w.code for w in watch_warnings(before, now, NOW)]


def test_rdap_expiry_reads_the_expiration_event() -> None:
    document = {
        "events": [
            {"eventAction": "registration", "eventDate": "2001-05-01T00:00:00Z"},
            {"eventAction": "expiration", "eventDate": "2027-05-01T00:00:00Z"},
        ]
    }
    assert rdap_expiry(document) == datetime(2027, 5, 1, tzinfo=UTC)


def test_rdap_without_a_usable_expiration_says_nothing() -> None:
    assert rdap_expiry({}) is None
    assert rdap_expiry({"events": "no"}) is None
    assert rdap_expiry({"events": [{"eventAction": "expiration", "eventDate": "soon"}]}) is None
    assert (
        rdap_expiry({"events": [{"eventAction": "expiration", "eventDate": "2027-05-01"}]}) is None
    )


def test_a_first_look_is_a_baseline() -> None:
    assert codes(None, Registration("acme.com", OLD, None)) == []


def test_a_changed_set_is_a_move_and_an_unknown_one_is_not() -> None:
    before = Registration("acme.com", OLD, None)
    assert codes(before, Registration("acme.com", ("ns1.new.org",), None)) == [
        "nameservers_changed"
    ]
    assert codes(before, Registration("acme.com", (), None)) == []
    assert codes(Registration("acme.com", (), None), Registration("acme.com", OLD, None)) == []


@given(
    st.lists(st.sampled_from(["NS1.a.net.", "ns1.a.net", "ns2.b.org.", "NS2.B.ORG"]), min_size=1)
)
def test_nameserver_sets_ignore_case_dots_and_order(records: list[str]) -> None:
    shuffled = list(reversed(records))
    assert nameserver_set(records) == nameserver_set(shuffled)
    assert all(not ns.endswith(".") and ns == ns.lower() for ns in nameserver_set(records))


@given(days=st.integers(-400, 400))
def test_expiry_is_reported_under_30_days_only(days: int) -> None:
    expires = NOW + timedelta(days=days)
    found = codes(None, Registration("acme.com", OLD, expires))
    assert found == (["registration_expiring"] if days < 30 else [])


def test_the_notice_window_is_the_operators_to_set() -> None:
    in_45_days = Registration("acme.com", OLD, NOW + timedelta(days=45))
    assert watch_warnings(None, in_45_days, NOW) == []  # the default 30 days
    [warning] = watch_warnings(None, in_45_days, NOW, notice=timedelta(days=60))
    assert warning.code == "registration_expiring"
    assert warning.found == [(NOW + timedelta(days=45)).isoformat()]  # what the api dates by
