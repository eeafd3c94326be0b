"""The schedule's pure rules: what a status change does, when a domain is next due, batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.contracts import DnsRecords, DomainStatus, NamedRecord
from domainflow.verifier.schedule import (
    DueDomain,
    ScheduleAction,
    ScheduleRow,
    action_for,
    chunk_by_region,
    chunks_by_place,
    claim_order,
    next_due,
    place,
)

NOW = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (DomainStatus.PENDING, ScheduleAction.SCHEDULE),
        (DomainStatus.VERIFIED, ScheduleAction.SCHEDULE),
        (DomainStatus.FAILED, ScheduleAction.HOLD),
        (DomainStatus.PROVISIONING, ScheduleAction.HOLD),
        (DomainStatus.DELETING, ScheduleAction.REMOVE),
        (DomainStatus.DELETED, ScheduleAction.REMOVE),
    ],
)
def test_every_status_has_its_action(status: DomainStatus, action: ScheduleAction) -> None:
    assert action_for(status) is action


def test_a_new_pending_domain_is_first_due_one_interval_from_now() -> None:
    placement = place(None, DomainStatus.PENDING, NOW, NOW, SIX_HOURS)
    assert placement is not None
    assert placement.next_check_at == NOW + SIX_HOURS
    assert placement.keep_records


def test_a_domain_on_the_cadence_keeps_its_due_time() -> None:
    # verified -> pending after a failed scheduled check: re-checked at the next cycle, which is
    # what turns a failure that persists into `failed`.
    due = NOW + timedelta(hours=5)
    row = ScheduleRow(DomainStatus.VERIFIED, due, NOW - timedelta(hours=1))
    placement = place(row, DomainStatus.PENDING, NOW, NOW, SIX_HOURS)
    assert placement is not None
    assert placement.next_check_at == due


def test_failed_domains_are_not_rechecked_automatically() -> None:
    row = ScheduleRow(DomainStatus.PENDING, NOW + SIX_HOURS, NOW - timedelta(hours=1))
    placement = place(row, DomainStatus.FAILED, NOW, NOW, SIX_HOURS)
    assert placement is not None
    assert placement.next_check_at is None
    assert placement.keep_records  # a manual verify may bring it back


def test_a_failed_domain_that_passes_a_manual_verify_rejoins_the_cadence() -> None:
    row = ScheduleRow(DomainStatus.FAILED, None, NOW - timedelta(hours=1))
    placement = place(row, DomainStatus.VERIFIED, NOW, NOW, SIX_HOURS)
    assert placement is not None
    assert placement.next_check_at == NOW + SIX_HOURS


@pytest.mark.parametrize("status", [DomainStatus.DELETING, DomainStatus.DELETED])
def test_deleting_removes_the_domain_from_the_schedule(status: DomainStatus) -> None:
    row = ScheduleRow(DomainStatus.VERIFIED, NOW + SIX_HOURS, NOW - timedelta(hours=1))
    placement = place(row, status, NOW, NOW, SIX_HOURS)
    assert placement is not None
    assert placement.next_check_at is None
    assert not placement.keep_records


def test_an_older_event_arriving_late_changes_nothing() -> None:
    row = ScheduleRow(DomainStatus.FAILED, None, NOW)
    assert place(row, DomainStatus.PENDING, NOW - timedelta(seconds=1), NOW, SIX_HOURS) is None


def test_nothing_brings_a_deleted_domain_back() -> None:
    row = ScheduleRow(DomainStatus.DELETED, None, NOW - timedelta(hours=1))
    assert place(row, DomainStatus.VERIFIED, NOW, NOW, SIX_HOURS) is None


def test_next_due_keeps_the_cadence_when_a_little_late() -> None:
    due = NOW - timedelta(minutes=3)
    assert next_due(due, NOW, SIX_HOURS) == due + SIX_HOURS


def test_next_due_restarts_from_now_when_far_overdue() -> None:
    due = NOW - timedelta(hours=20)
    assert next_due(due, NOW, SIX_HOURS) == NOW + SIX_HOURS


@given(
    late=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    interval_s=st.integers(min_value=1, max_value=7 * 86_400),
)
def test_next_due_is_between_half_and_one_interval_away(late: timedelta, interval_s: int) -> None:
    interval = timedelta(seconds=interval_s)
    due = NOW - late
    nxt = next_due(due, NOW, interval)
    assert interval / 2 < nxt - NOW <= interval
    if late < interval / 2:
        assert nxt == due + interval  # on the beat


@given(
    regions=st.lists(st.sampled_from(["us-east-1", "eu-west-1", "ap-south-1"]), max_size=600),
    size=st.integers(min_value=1, max_value=150),
)
def test_chunks_hold_every_item_once_in_one_region_and_within_size(
    regions: list[str], size: int
) -> None:
    items = list(enumerate(regions))
    chunks = list(chunk_by_region(items, lambda item: item[1], size))
    seen = [item for _, chunk in chunks for item in chunk]
    assert sorted(seen) == items
    for region, chunk in chunks:
        assert 1 <= len(chunk) <= size
        assert {r for _, r in chunk} == {region}
    # No more calls than the fewest possible per region.
    for region in set(regions):
        count = regions.count(region)
        assert sum(1 for r, _ in chunks if r == region) == -(-count // size)


def test_chunks_of_one_region_are_full_hundreds() -> None:
    chunks = list(chunk_by_region(range(250), lambda _: "us-east-1", 100))
    assert [len(c) for _, c in chunks] == [100, 100, 50]


def _due(n: int, account: str | None, region: str = "us-east-1") -> DueDomain:
    name = f"d{n}.example.com"
    txt = NamedRecord(name=f"_sendmux.{name}", value="sendmux-verify=team_x")
    records = DnsRecords(
        mx=[], spf=NamedRecord(name=name, value="v=spf1 ~all"), dmarc=txt, dkim=[],
        verification=txt,
    )  # fmt: skip
    return DueDomain(f"mdom_{n}", "team_x", name, region, records, NOW, ses_account=account)


@given(st.lists(st.tuples(st.sampled_from([None, "a", "b"]), st.sampled_from(["r1", "r2"]))))
def test_each_account_region_gets_its_own_full_chunks(places: list[tuple[str | None, str]]) -> None:
    due = [_due(n, account, region) for n, (account, region) in enumerate(places)]
    chunked = chunks_by_place(due, 3)
    for (account, region), chunks in chunked.items():
        assert all(d.ses_account == account and d.region == region for c in chunks for d in c)
        assert all(len(c) == 3 for c in chunks[:-1])
        assert 1 <= len(chunks[-1]) <= 3
    assert sorted(d.domain_id for cs in chunked.values() for c in cs for d in c) == sorted(
        d.domain_id for d in due
    )


@given(
    accounts=st.lists(st.text("abcdef-", min_size=1, max_size=6), unique=True, max_size=12),
    workers=st.integers(min_value=1, max_value=4),
)
def test_every_accounts_first_claim_worker_starts_before_any_accounts_second(
    accounts: list[str], workers: int
) -> None:
    order = claim_order(accounts, workers)
    assert sorted(order) == sorted(accounts * workers)  # each account, once per worker
    for round_ in range(workers):  # round k: the k-th worker of every account, in turn
        assert order[round_ * len(accounts) : (round_ + 1) * len(accounts)] == accounts
