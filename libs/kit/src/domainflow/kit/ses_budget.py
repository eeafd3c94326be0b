"""Amazon SES's request budget: one per account, region and quota, shared by every caller.

SES allows an account one request a second per region for every action but sending, and a
separate sending rate; past them it answers `Throttling` (v1) or `TooManyRequestsException`
(v2). The provisioner, the verifier (its cycle and on-demand verifies) and the notifier all
spend the same account's quota, in every replica, so each call takes a slot of one shared
budget right before it is made (`SesBudget.call`).

The slots are a virtual-scheduling GCRA kept in PostgreSQL (`PgSlotStore`, a database
every service reaches): the next free slot is `greatest(next_free_at, now())`, and taking
it pushes `next_free_at` one spacing further. Callers do not book slots far ahead: they
queue (`ses_budget_waiters`), and a slot is booked only once it is due within the horizon
(half a slot, at least a quarter of a second), by the first caller in the queue. The
queue is ordered by when each caller asked, less a head start for a quiet caller's call (a
team with nothing else waiting, `quiet_caller()`): such a call is served next, ahead of
every call of a team with a backlog, but one that waited longer than the head start is
never passed, so nothing starves. The database's clock is the only clock, so replicas on
skewed hosts still share one budget.

A call SES refuses for rate anyway (someone outside the budget spends the account, or the
configured rate is above the account's) is not a failure: it is counted, takes a new slot
(at the back of the queue, so its retries are paced like any call) and is made again,
until SES accepts it or refuses it for another reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
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


def horizon(spacing: float) -> float:
    """How long before its slot a caller may book it: half a slot, a quarter second at least.

    Long enough that the first in the queue, woken a little late on a busy host, still books
    the slot before it is due (none is wasted); short enough that a call arriving now waits
    for at most the one slot already booked before it is served in its rank."""
    return max(spacing / 2, 0.25)


@dataclass(frozen=True)
class Ask:
    """One caller asking for one slot (each try names the same waiter)."""

    waiter: uuid.UUID
    #: Seconds the caller is ranked ahead of when it asked (a quiet team's call).
    head_start: float
    horizon: float


@dataclass(frozen=True)
class Reservation:
    """A try's answer: booked, and the seconds until the slot (<= 0: go now); or not, and
    the seconds until it is worth asking again."""

    booked: bool
    wait: float


class SlotStore(Protocol):
    async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
        """Try to book `bucket`'s next slot for `ask` (queueing it if it cannot yet)."""
        ...

    async def leave(self, bucket: str, waiter: uuid.UUID) -> None:
        """The caller stopped waiting (cancelled): out of the queue."""
        ...

    async def throttled(self, bucket: str) -> None:
        """SES refused a call of `bucket` for rate anyway: count it."""
        ...


@dataclass
class _Waiting:
    asked_at: float
    ordered_at: float
    seen_at: float


def _gone_after(spacing: float) -> float:
    # A waiter asks again at least once a slot; silent for two slots (and two seconds), its
    # process died mid-wait and it no longer holds the queue.
    return 2 * spacing + 2


class MemorySlotStore:
    """One process's slots (unit tests, a lone tool): the same rules without a database."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next_free: dict[str, float] = {}
        self._queues: dict[str, dict[uuid.UUID, _Waiting]] = {}
        self.throttles: dict[str, int] = {}

    async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
        now = self._clock()
        slot, after = reserve_slot(self._next_free.get(bucket), now, spacing)
        queue = self._queues.setdefault(bucket, {})
        me = queue.setdefault(ask.waiter, _Waiting(now, now - ask.head_start, now))
        me.seen_at = now
        if slot > now + ask.horizon:
            return Reservation(booked=False, wait=slot - now - ask.horizon)
        live = [
            (w.ordered_at, str(k))
            for k, w in queue.items()
            if w.seen_at > now - _gone_after(spacing)
        ]
        if min(live)[1] != str(ask.waiter):
            return Reservation(booked=False, wait=slot - now - ask.horizon + spacing)
        del queue[ask.waiter]
        self._next_free[bucket] = after
        return Reservation(booked=True, wait=slot - now)

    async def leave(self, bucket: str, waiter: uuid.UUID) -> None:
        self._queues.get(bucket, {}).pop(waiter, None)

    async def throttled(self, bucket: str) -> None:
        self.throttles[bucket] = self.throttles.get(bucket, 0) + 1


_RESERVE = "SELECT booked, wait FROM ses_budget_reserve($1, $2, $3, $4, $5, $6, $7, $8)"

_LEAVE = "DELETE FROM ses_budget_waiters WHERE bucket = $1 AND waiter = $2"

_THROTTLED_SQL = "UPDATE ses_budget SET throttled = throttled + 1 WHERE bucket = $1"


def _parts(bucket: str) -> tuple[str, str, str]:
    # `ses:<account>:<region>:<quota>`; an account name may hold a colon, the rest cannot.
    account, region, quota = bucket.removeprefix("ses:").rsplit(":", 2)
    return account, region, quota


class PgSlotStore:
    """The shared slots and their queue, in the SES budget's database (`ses_budget`,
    `ses_budget_waiters`; one try is one call of `ses_budget_reserve`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
        account, region, quota = _parts(bucket)
        async with self._db.pool.acquire() as conn:
            row = await conn.fetchrow(
                _RESERVE,
                bucket,
                account,
                region,
                quota,
                spacing,
                ask.horizon,
                ask.waiter,
                ask.head_start,
            )
        assert row is not None  # a function with OUT parameters returns one row
        return Reservation(booked=bool(row["booked"]), wait=float(row["wait"]))

    async def leave(self, bucket: str, waiter: uuid.UUID) -> None:
        async with self._db.pool.acquire() as conn:
            await conn.execute(_LEAVE, bucket, waiter)

    async def throttled(self, bucket: str) -> None:
        async with self._db.pool.acquire() as conn:
            await conn.execute(_THROTTLED_SQL, bucket)


#: Whether the SES calls made in this context are a quiet team's (see `quiet_caller`).
_QUIET: ContextVar[bool] = ContextVar("ses_quiet_caller", default=False)


def is_quiet_caller() -> bool:
    """Whether the SES calls made here now are a quiet team's."""
    return _QUIET.get()


@contextlib.contextmanager
def quiet_caller(quiet: bool = True) -> Iterator[None]:
    """The SES calls made inside are for a team with nothing else waiting: each is ranked
    the budget's `quiet_head_start` seconds ahead of when it asks, so it is served before
    the calls of teams with a backlog (but never before one that waited longer than that)."""
    token = _QUIET.set(quiet)
    try:
        yield
    finally:
        _QUIET.reset(token)


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
        quiet_head_start: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        account_rates: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if rate <= 0 or send_rate <= 0:
            raise ValueError("SES rates must be positive")
        if quiet_head_start < 0:
            raise ValueError("the quiet head start is seconds, zero or more")
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
        self._quiet_head_start = quiet_head_start
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
                quiet_head_start=self._quiet_head_start,
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

    async def reserve(self, region: str, quota: Quota = Quota.REQUEST) -> float:
        """Wait for one call's slot, to gather work into the call meanwhile; the event loop's
        time the slot was due, to hand to `call(reserved=...)`."""
        due, _ = await self._take_slot(region, quota)
        return due

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
        spacing = self._spacing[quota]
        head_start = self._quiet_head_start if is_quiet_caller() else 0.0
        waited = 0.0
        while True:
            ask = Ask(uuid.uuid4(), head_start, horizon(spacing))
            booked = await self._queue_for(bucket, spacing, ask)
            waited += booked.waited
            due = loop.time() + max(booked.wait, 0.0)
            if booked.wait <= 0:
                return due, waited
            await self._sleep(booked.wait)
            waited += booked.wait
            if not self._late(due, quota) or missed >= _MAX_MISSED_SLOTS:
                return due, waited
            missed += 1
            log.info("ses.slot_missed", bucket=bucket, late_seconds=round(loop.time() - due, 3))

    async def _queue_for(self, bucket: str, spacing: float, ask: Ask) -> _Booked:
        """Ask until a slot is booked: queued meanwhile, asking again when it may be due."""
        queued = 0.0
        try:
            while True:
                answer = await self._store.reserve(bucket, spacing, ask)
                if answer.booked:
                    return _Booked(answer.wait, queued)
                pause = max(answer.wait, 0.001)
                await self._sleep(pause)
                queued += pause
        except BaseException:
            # Cancelled or failed while queued (or while asking): leave the queue rather
            # than hold it (a waiter not seen for two slots is passed over anyway).
            with contextlib.suppress(Exception):
                await self._store.leave(bucket, ask.waiter)
            raise

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
        reserved: float | None = None,
    ) -> T:
        """Make one SES call in its slot, again in a later slot each time SES throttles it.

        `timeout` bounds each call, never the wait for a slot: a call queued behind a burst
        has not been made, so it cannot have timed out. `reserved`: the caller already
        waited for the first slot (`reserve`, to gather more work into the call meanwhile),
        due at this loop time: the call is held to that slot, not to when it was made. Any other
        failure is raised as the call raised it. A client built by `AwsClients` checks the
        slot once more right before the request leaves (`hold_to_slot`): a request held up
        between its slot and the wire takes a new slot.
        """
        while True:
            due = reserved if reserved is not None else (await self._take_slot(region, quota))[0]
            reserved = None
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


@dataclass(frozen=True)
class _Booked:
    wait: float  # seconds from now until the booked slot
    waited: float  # seconds spent queued before it was booked


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
        quiet_head_start=ses.quiet_head_start,
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
        "How far ahead the budget's slots are booked (callers queue instead of booking far"
        " ahead, so this stays within about a slot and a half).",
        "SELECT account, region, quota,"
        " greatest(0, extract(epoch FROM next_free_at - now())) AS value FROM ses_budget",
        ("account", "region", "quota"),
    ),
    Gauge(
        "domainflow_ses_callers_waiting",
        "Calls queued for a slot of the budget, in every service and replica: above zero"
        " most of the time, the account's quota is the bottleneck.",
        "SELECT b.account, b.region, b.quota, count(w.waiter) AS value FROM ses_budget b"
        " LEFT JOIN ses_budget_waiters w ON w.bucket = b.bucket"
        " AND w.seen_at > now() - interval '30 seconds'"
        " GROUP BY b.account, b.region, b.quota",
        ("account", "region", "quota"),
    ),
)
