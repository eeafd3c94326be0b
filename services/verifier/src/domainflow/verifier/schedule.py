"""Pure schedule rules: what a status change does to a domain's row, when it is next due, batches.

No I/O here: the handlers and the cycle load rows, ask these functions, and save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from domainflow.contracts import DnsRecords, DomainStatus

T = TypeVar("T")


class ScheduleAction(StrEnum):
    """What a domain's new status means for its automatic re-checks."""

    SCHEDULE = "schedule"  # re-checked every interval (pending, verified)
    HOLD = "hold"  # kept, not re-checked automatically (failed: a manual verify recovers it)
    REMOVE = "remove"  # never checked again (deleting, deleted)


_ACTIONS: dict[DomainStatus, ScheduleAction] = {
    DomainStatus.PENDING: ScheduleAction.SCHEDULE,
    DomainStatus.VERIFIED: ScheduleAction.SCHEDULE,
    DomainStatus.FAILED: ScheduleAction.HOLD,
    # Not provisioned yet: nothing to check until the api says pending.
    DomainStatus.PROVISIONING: ScheduleAction.HOLD,
    DomainStatus.DELETING: ScheduleAction.REMOVE,
    DomainStatus.DELETED: ScheduleAction.REMOVE,
}


def action_for(status: DomainStatus) -> ScheduleAction:
    return _ACTIONS[status]


@dataclass(frozen=True)
class ScheduleRow:
    """The part of a schedule row the rules look at."""

    status: DomainStatus
    next_check_at: datetime | None
    status_event_at: datetime


@dataclass(frozen=True)
class Placement:
    """A status change's effect on the row: its status and when it is next due (None: never)."""

    status: DomainStatus
    next_check_at: datetime | None
    keep_records: bool


def place(
    current: ScheduleRow | None,
    new_status: DomainStatus,
    event_at: datetime,
    now: datetime,
    interval: timedelta,
) -> Placement | None:
    """The row after a status change, or None when the event is older than what the row shows.

    A domain already on the cadence keeps its due time (verified -> pending after a failed
    scheduled check is re-checked next cycle, which is what turns a persisting failure into
    `failed`); a domain joining the cadence is first due one interval from now.
    """
    if current is not None and event_at < current.status_event_at:
        return None  # a late, older event: the row already reflects something newer
    removed = (DomainStatus.DELETING, DomainStatus.DELETED)
    if current is not None and current.status in removed and new_status not in removed:
        return None  # deletion is final; nothing resurrects a removed domain
    action = action_for(new_status)
    if action is ScheduleAction.REMOVE:
        return Placement(new_status, None, keep_records=False)
    if action is ScheduleAction.HOLD:
        return Placement(new_status, None, keep_records=True)
    if current is not None and current.next_check_at is not None:
        return Placement(new_status, current.next_check_at, keep_records=True)
    return Placement(new_status, now + interval, keep_records=True)


def next_due(previous_due: datetime, now: datetime, interval: timedelta) -> datetime:
    """When a domain just checked is due again: the cadence kept, unless it ran far behind.

    `previous_due + interval` keeps every domain on its own six-hour beat however late in a
    tick it was reached. When the check ran more than half an interval late (a replica was
    down, the cycle is behind), the cadence restarts from now, so two checks of one domain are
    never closer than half an interval.
    """
    if now - previous_due >= interval / 2:
        return now + interval
    return previous_due + interval


def chunk_by_region(
    items: Iterable[T], region_of: Callable[[T], str], size: int
) -> Iterator[tuple[str, list[T]]]:
    """Group by region (SES is regional) and cut each group into chunks of at most `size`."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(region_of(item), []).append(item)
    for region in sorted(groups):
        group = groups[region]
        for start in range(0, len(group), size):
            yield region, group[start : start + size]


def chunks_by_place(
    items: Iterable[DueDomain], size: int
) -> dict[tuple[str | None, str], list[list[DueDomain]]]:
    """Each SES account-region's domains (SES keeps identities, and paces calls, per account
    and region), cut into chunks of at most `size`."""
    places: dict[tuple[str | None, str], list[DueDomain]] = {}
    for item in items:
        places.setdefault((item.ses_account, item.region), []).append(item)
    return {
        place: [c for _, c in chunk_by_region(group, lambda d: d.region, size)]
        for place, group in places.items()
    }


@dataclass(frozen=True)
class DueDomain:
    """A claimed schedule row: what to probe, and what the result event needs."""

    domain_id: str
    team_id: str
    domain: str
    region: str
    records: DnsRecords
    due_at: datetime
    #: The SES account it is placed in (None: the default account).
    ses_account: str | None = None


def claim_order(accounts: Iterable[str], workers_each: int) -> list[str]:
    """The accounts a pass's claim workers serve, in the order they start: every account's
    first worker before any account's second. The pool serves claims in turn, and an account
    whose first claim waited behind the others' second ones would start spending its SES
    quota that much later."""
    listed = list(accounts)
    return [account for _ in range(max(1, workers_each)) for account in listed]
