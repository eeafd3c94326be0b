"""Amazon SES's request budget: one per account, region and quota, shared by every caller.

SES allows an account one request a second per region for every action but sending, and a
separate sending rate; past them it answers `Throttling` (v1) or `TooManyRequestsException`
(v2). The provisioner, the verifier (its cycle and on-demand verifies) and the notifier all
spend the same account's quota, in every replica, so each call takes a slot of one shared
budget right before it is made (`SesBudget.call`).

The slots are a virtual-scheduling GCRA kept in PostgreSQL (`PgSlotStore`, a database
every service reaches): one atomic UPDATE hands the caller the next free slot,
`greatest(next_free_at, now())`, and pushes `next_free_at` one spacing further; the caller
sleeps until its slot. Reserving only right before each call keeps the queue as short as
the callers in flight, so nobody waits behind work that has not reached SES yet. The
database's clock is the only clock, so replicas on skewed hosts still share one budget.

A call SES refuses for rate anyway (someone outside the budget spends the account, or the
configured rate is above the account's) is not a failure: it is counted, takes a new slot
(at the back of the queue, so its retries are paced like any call) and is made again,
until SES accepts it or refuses it for another reason.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from typing import Protocol, TypeVar

from domainflow.kit.aws import SesError, ses_error
from domainflow.kit.database import Database, ensure_database, migration_files
from domainflow.kit.logging import get_logger
from domainflow.kit.metrics import Gauge
from domainflow.kit.settings import ServiceSettings

log = get_logger(__name__)

T = TypeVar("T")


class Quota(StrEnum):
    REQUEST = "request"  # every SES action but sending
    SEND = "send"  # SendEmail, SendRawEmail, ...


#: Error codes SES answers when a request went past a rate.
_THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestThrottled"}
)


def is_throttled(error: SesError) -> bool:
    """Whether SES refused the call for rate only: waiting a moment will let it through.

    SES v1 also answers `Throttling` when the *daily* sending quota is spent, and
    `LimitExceeded` for count limits (identities per account): neither passes in seconds,
    so neither is treated as a rate refusal.
    """
    message = error.message.lower()
    if error.code in _THROTTLED:
        return "daily" not in message
    if error.code in ("LimitExceeded", "LimitExceededException"):
        return "rate" in message
    return False


def reserve_slot(next_free_at: float | None, now: float, spacing: float) -> tuple[float, float]:
    """The slot a caller arriving at `now` gets, and the new `next_free_at` (pure core)."""
    slot = now if next_free_at is None else max(next_free_at, now)
    return slot, slot + spacing


class SlotStore(Protocol):
    async def reserve(self, bucket: str, spacing: float) -> float:
        """Reserve `bucket`'s next slot; seconds from now until it (<= 0: go now)."""
        ...

    async def throttled(self, bucket: str) -> None:
        """SES refused a call of `bucket` for rate anyway: count it."""
        ...


class MemorySlotStore:
    """One process's slots (unit tests, a lone tool): the same rule without a database."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next_free: dict[str, float] = {}
        self.throttles: dict[str, int] = {}

    async def reserve(self, bucket: str, spacing: float) -> float:
        now = self._clock()
        slot, self._next_free[bucket] = reserve_slot(self._next_free.get(bucket), now, spacing)
        return slot - now

    async def throttled(self, bucket: str) -> None:
        self.throttles[bucket] = self.throttles.get(bucket, 0) + 1


# One statement, one clock reading: the upsert creates a bucket on its first use, and the
# counters move in the same row. $2 is the spacing in seconds.
_RESERVE = """
WITH t AS (SELECT clock_timestamp() AS now)
INSERT INTO ses_budget AS s (bucket, account, region, quota, next_free_at, slots_taken)
SELECT $1, $3, $4, $5, t.now + make_interval(secs => $2), 1 FROM t
ON CONFLICT (bucket) DO UPDATE
SET next_free_at = greatest(s.next_free_at, EXCLUDED.next_free_at - make_interval(secs => $2))
                   + make_interval(secs => $2),
    slots_taken = s.slots_taken + 1,
    waited_seconds = s.waited_seconds + greatest(0, extract(epoch FROM (
        s.next_free_at - (EXCLUDED.next_free_at - make_interval(secs => $2)))))
RETURNING extract(epoch FROM (s.next_free_at - make_interval(secs => $2)
                              - (SELECT now FROM t)))::float8
"""

_THROTTLED_SQL = "UPDATE ses_budget SET throttled = throttled + 1 WHERE bucket = $1"


def _parts(bucket: str) -> tuple[str, str, str]:
    # `ses:<account>:<region>:<quota>`; an account name may hold a colon, the rest cannot.
    account, region, quota = bucket.removeprefix("ses:").rsplit(":", 2)
    return account, region, quota


class PgSlotStore:
    """The shared slots, in the SES budget's database (`ses_budget`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, bucket: str, spacing: float) -> float:
        account, region, quota = _parts(bucket)
        async with self._db.pool.acquire() as conn:
            wait = await conn.fetchval(_RESERVE, bucket, spacing, account, region, quota)
        return float(wait)

    async def throttled(self, bucket: str) -> None:
        async with self._db.pool.acquire() as conn:
            await conn.execute(_THROTTLED_SQL, bucket)


#: Slots a caller woken late gives up before it goes anyway.
_MAX_MISSED_SLOTS = 3


class SesBudget:
    """Slots of one SES account's quotas: `await budget.call(region, make)` for each call."""

    def __init__(
        self,
        store: SlotStore,
        *,
        rate: float,
        send_rate: float,
        account: str = "default",
        headroom: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        account_rates: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if rate <= 0 or send_rate <= 0:
            raise ValueError("SES rates must be positive")
        if not 0 <= headroom < 1:
            raise ValueError("the headroom is a share of the rate, from 0 up to (not) 1")
        self._store = store
        # Slots are spaced a little wider than the quota: SES judges a call when it arrives,
        # and one that leaves a few milliseconds late must not land on the next one's heels.
        pace = 1.0 - headroom
        self._spacing = {
            Quota.REQUEST: 1.0 / (rate * pace),
            Quota.SEND: 1.0 / (send_rate * pace),
        }
        # How late a caller may wake after its slot and still arrive clear of the next one.
        self._slack = {
            Quota.REQUEST: self._spacing[Quota.REQUEST] - 1.0 / rate,
            Quota.SEND: self._spacing[Quota.SEND] - 1.0 / send_rate,
        }
        self.account = account
        self._sleep = sleep
        self._rate, self._send_rate, self._headroom = rate, send_rate, headroom
        # Other accounts' budgets: the same store, each its own buckets and quotas.
        self._account_rates = dict(account_rates or {})
        self._siblings: dict[str, SesBudget] = {account: self}

    def for_account(self, account: str | None) -> SesBudget:
        """The budget of `account` (None: this one's): its own slots in the same store, at
        its own rates (`account_rates`; unlisted: this budget's)."""
        if account is None:
            return self
        sibling = self._siblings.get(account)
        if sibling is None:
            rate, send_rate = self._account_rates.get(account, (self._rate, self._send_rate))
            sibling = SesBudget(
                self._store,
                rate=rate,
                send_rate=send_rate,
                account=account,
                headroom=self._headroom,
                sleep=self._sleep,
                account_rates=self._account_rates,
            )
            sibling._siblings = self._siblings
            self._siblings[account] = sibling
        return sibling

    @classmethod
    def unlimited(cls) -> SesBudget:
        """No pacing, still waiting out throttles: a lone tool or a test of an adapter."""
        return cls(MemorySlotStore(), rate=math.inf, send_rate=math.inf)

    def bucket(self, region: str, quota: Quota = Quota.REQUEST) -> str:
        return f"ses:{self.account}:{region}:{quota.value}"

    async def acquire(self, region: str, quota: Quota = Quota.REQUEST) -> float:
        """Wait for one call's slot; the seconds waited."""
        _, waited = await self._take_slot(region, quota)
        return waited

    async def _take_slot(
        self, region: str, quota: Quota, *, missed: int = 0
    ) -> tuple[float, float]:
        """Reserve and wait for a slot; the loop time it was due at, and the seconds waited.

        A caller the host woke later than the headroom allows (a stalled event loop, a busy
        CPU) would arrive on the heels of the next slot's call and be throttled: it takes a
        new slot instead, a few times at most, then goes.
        """
        bucket = self.bucket(region, quota)
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            wait = await self._store.reserve(bucket, self._spacing[quota])
            due = loop.time() + max(wait, 0.0)
            if wait <= 0:
                return due, waited
            await self._sleep(wait)
            waited += wait
            if not self._late(due, quota) or missed >= _MAX_MISSED_SLOTS:
                return due, waited
            missed += 1
            log.info("ses.slot_missed", bucket=bucket, late_seconds=round(loop.time() - due, 3))

    def _late(self, due: float, quota: Quota) -> bool:
        slack = self._slack[quota]
        return slack > 0 and asyncio.get_running_loop().time() - due > slack

    async def call(
        self,
        region: str,
        make: Callable[[], Awaitable[T]],
        *,
        quota: Quota = Quota.REQUEST,
        timeout: float | None = None,  # noqa: ASYNC109 - each call's own bound, not the wait's
        reserved: bool = False,
    ) -> T:
        """Make one SES call in its slot, again in a later slot each time SES throttles it.

        `timeout` bounds each call, never the wait for a slot: a call queued behind a burst
        has not been made, so it cannot have timed out. `reserved`: the caller already
        waited for the first slot (to gather more work into the call meanwhile). Any other
        failure is raised as the call raised it. A client built by `AwsClients` checks the
        slot once more right before the request leaves (`hold_to_slot`): a request held up
        between its slot and the wire takes a new slot.
        """
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() if reserved else (await self._take_slot(region, quota))[0]
            reserved = False
            token = _SLOT.set(_Slot(self, region, quota, due))
            try:
                async with asyncio.timeout(timeout):
                    return await make()
            except Exception as exc:
                refusal = ses_error(exc)
                if refusal is None or not is_throttled(refusal):
                    raise
                bucket = self.bucket(region, quota)
                log.warning("ses.throttled", bucket=bucket, error=refusal.message)
                await self._store.throttled(bucket)
            finally:
                _SLOT.reset(token)


@dataclass
class _Slot:
    """The slot the call under way in this task was given."""

    budget: SesBudget
    region: str
    quota: Quota
    due: float  # the event loop's time the call was due to leave
    missed: int = 0


_SLOT: ContextVar[_Slot | None] = ContextVar("ses_slot", default=None)


async def hold_to_slot(**event: object) -> None:
    """botocore's `before-send` hook: a request leaving too late for its slot takes another.

    Runs after serialising and signing, right before the request is handed to the HTTP
    session, so SES sees the calls spaced as the budget spaced them. (Opening a fresh
    client's first connection comes after it: that one call per client may still arrive
    late, and is waited out if SES throttles it.)
    """
    slot = _SLOT.get()
    if slot is None or slot.missed >= _MAX_MISSED_SLOTS:
        return
    if slot.budget._late(slot.due, slot.quota):
        slot.missed += 1
        slot.due, _ = await slot.budget._take_slot(slot.region, slot.quota, missed=slot.missed)


def migrations() -> list[tuple[str, str]]:
    """The budget database's one table (no outbox, no inbox: it belongs to no service)."""
    return migration_files(files("domainflow.kit") / "ses_budget_migrations")


async def open_budget_database(url: str, *, size: int = 2) -> Database:
    """Create (if missing) and migrate the budget's database; a small pool of its own."""
    await ensure_database(url)
    return await Database.prepare(url, migrations(), size=size)


async def open_budget(settings: ServiceSettings) -> tuple[SesBudget, Database]:
    """The shared budget as the settings describe it, and its database (close it on exit)."""
    db = await open_budget_database(settings.ses.budget_database_url)
    ses = settings.ses
    budget = SesBudget(
        PgSlotStore(db),
        rate=ses.rate,
        send_rate=ses.send_rate,
        account=ses.default_account,
        headroom=ses.headroom,
        account_rates={
            a.name: (a.rate or ses.rate, a.send_rate or ses.send_rate) for a in ses.account_list()
        },
    )
    return budget, db


#: What an operator graphs when SES's quota is the bottleneck (served by every service that
#: calls SES, read from the budget's database, so every replica reports the same numbers).
GAUGES = (
    Gauge(
        "domainflow_ses_slots_taken",
        "SES calls made under the shared budget, per account, region and quota (a counter).",
        "SELECT account, region, quota, slots_taken AS value FROM ses_budget",
        ("account", "region", "quota"),
    ),
    Gauge(
        "domainflow_ses_slot_wait_seconds",
        "Seconds callers waited for their SES slot, summed (a counter): its rate over the"
        " slots' rate is the mean wait.",
        "SELECT account, region, quota, waited_seconds AS value FROM ses_budget",
        ("account", "region", "quota"),
    ),
    Gauge(
        "domainflow_ses_throttled",
        "Calls SES refused for rate although the budget gave them a slot (a counter); above"
        " zero, something outside this budget spends the same account.",
        "SELECT account, region, quota, throttled AS value FROM ses_budget",
        ("account", "region", "quota"),
    ),
    Gauge(
        "domainflow_ses_booked_ahead_seconds",
        "How far ahead the budget's slots are already given out: the wait a new call has.",
        "SELECT account, region, quota,"
        " greatest(0, extract(epoch FROM next_free_at - now())) AS value FROM ses_budget",
        ("account", "region", "quota"),
    ),
)
