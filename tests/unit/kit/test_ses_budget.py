"""The SES budget: slots spaced 1/rate apart, callers queued in rank order (a quiet team's
call ahead of a backlog's), throttling waited out.

Most tests run on virtual time: every sleep is a timer the test's clock jumps to once all
callers are asleep, so waits are exact and no test waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.kit.aws import SesError
from domainflow.kit.ses_budget import (
    Ask,
    MemorySlotStore,
    Quota,
    Reservation,
    SesBudget,
    hold_to_slot,
    horizon,
    is_throttled,
    quiet_caller,
    reserve_slot,
)

T = TypeVar("T")


class VirtualTime:
    """A clock and a sleep for the budget: sleeping callers wake in time order, the clock
    jumping to each wake-up once every caller is asleep (or done)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(seconds, 0.0), next(self._order), woken))
        await woken

    async def at(self, when: float, work: Awaitable[T]) -> T:
        """`work`, started at virtual time `when`."""
        await self.sleep(when - self.now)
        return await work

    def run(self, *work: Coroutine[Any, Any, T]) -> list[T]:
        async def drive() -> list[T]:
            tasks = [asyncio.ensure_future(w) for w in work]
            while not all(t.done() for t in tasks):
                for _ in range(20):  # let every runnable caller reach its next sleep
                    await asyncio.sleep(0)
                if self._timers and not all(t.done() for t in tasks):
                    when, _, woken = heapq.heappop(self._timers)
                    self.now = max(self.now, when)
                    if not woken.done():  # a sleeper cancelled meanwhile
                        woken.set_result(None)
            return [t.result() for t in tasks]

        return asyncio.run(drive())


def budget_on(time: VirtualTime, **kw: Any) -> SesBudget:
    kw.setdefault("send_rate", 1.0)
    return SesBudget(MemorySlotStore(time.clock), sleep=time.sleep, **kw)


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=200),
    rate=st.floats(min_value=0.1, max_value=50, allow_nan=False),
)
def test_slots_are_spaced_and_never_early_and_never_idle(gaps: list[float], rate: float) -> None:
    spacing = 1 / rate
    now, next_free = 0.0, None
    slots: list[float] = []
    for gap in gaps:
        now += gap
        slot, next_free = reserve_slot(next_free, now, spacing)
        assert slot >= now  # nobody goes before they ask
        if slots:
            assert slot - slots[-1] >= spacing - 1e-9  # the budget holds
            # Work-conserving: a caller waits only for the slot before it, never longer.
            assert slot == pytest.approx(max(now, slots[-1] + spacing))
        slots.append(slot)


def test_callers_in_any_window_of_one_second_stay_within_the_rate() -> None:
    time = VirtualTime()
    budget = budget_on(time, rate=2.0)
    # Ten callers ask at t=0: the first goes now, the rest at 0.5 s steps.
    waits = time.run(*(budget.acquire("us-east-1") for _ in range(10)))
    assert sorted(waits) == pytest.approx([0.5 * i for i in range(10)])


def test_regions_and_accounts_have_budgets_of_their_own() -> None:
    time = VirtualTime()
    store = MemorySlotStore(time.clock)
    a = SesBudget(store, rate=1.0, send_rate=1.0, account="111", sleep=time.sleep)
    b = SesBudget(store, rate=1.0, send_rate=1.0, account="222", sleep=time.sleep)
    waits = time.run(
        a.acquire("us-east-1"),
        a.acquire("eu-west-1"),
        b.acquire("us-east-1"),
        time.at(0.0, a.acquire("us-east-1")),  # asks after the first, same account and region
    )
    assert waits == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_a_late_caller_waits_only_for_the_slot_already_booked() -> None:
    # An on-demand verify arriving during a cycle queues behind the one call the cycle has
    # booked, not behind the whole cycle: slots are booked right before each call.
    time = VirtualTime()
    budget = budget_on(time, rate=1.0)
    _, verify = time.run(budget.acquire("us-east-1"), time.at(0.2, budget.acquire("us-east-1")))
    assert verify == pytest.approx(0.8)


def test_slots_are_booked_only_within_the_horizon() -> None:
    # Callers queue instead of booking far ahead: at any moment at most the slot being used
    # and the next one are booked, whatever the number of callers.
    time = VirtualTime()
    booked_ahead: list[float] = []

    class Watched(MemorySlotStore):
        async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
            answer = await super().reserve(bucket, spacing, ask)
            if answer.booked:
                booked_ahead.append(answer.wait)
            return answer

    budget = SesBudget(Watched(time.clock), rate=1.0, send_rate=1.0, sleep=time.sleep)
    time.run(*(budget.acquire("us-east-1") for _ in range(8)))
    assert len(booked_ahead) == 8
    assert max(booked_ahead) <= horizon(1.0) + 1e-9
    assert horizon(1.0) == 0.5
    assert horizon(0.1) == 0.25  # never less than a quarter second, however fast the rate


def test_a_quiet_callers_call_goes_ahead_of_a_queued_backlog() -> None:
    time = VirtualTime()
    budget = budget_on(time, rate=1.0, quiet_head_start=30.0)
    order: list[str] = []

    async def call(name: str, quiet: bool = False) -> float:
        with quiet_caller(quiet):
            waited = await budget.acquire("us-east-1")
        order.append(name)
        return waited

    waits = time.run(
        *(time.at(i / 100, call(f"backlog{i}")) for i in range(6)),
        time.at(0.6, call("quiet", quiet=True)),
    )
    # The backlog's first call is at t=0, its second booked (at 0.5) for 1.0; the quiet
    # call, asked at 0.6, takes the next slot (2.0), ahead of the four calls still queued.
    assert order == [
        "backlog0",
        "backlog1",
        "quiet",
        "backlog2",
        "backlog3",
        "backlog4",
        "backlog5",
    ]
    assert waits[-1] == pytest.approx(1.4)
    # Among themselves, the backlog's calls are served in the order they asked.
    assert waits[:6] == pytest.approx([0.0, 0.99, 2.98, 3.97, 4.96, 5.95])


def test_a_head_start_never_passes_a_call_that_waited_longer() -> None:
    # The head start is bounded: a backlog call that has waited longer than it is served
    # before quiet calls asking now, so a stream of quiet teams cannot starve a backlog.
    time = VirtualTime()
    budget = budget_on(time, rate=1.0, quiet_head_start=3.0)
    order: list[str] = []

    async def call(name: str, quiet: bool = False) -> None:
        with quiet_caller(quiet):
            await budget.acquire("us-east-1")
        order.append(name)

    time.run(
        *(time.at(i / 100, call(f"b{i}")) for i in range(8)),
        *(time.at(5.2 + i, call(f"q{i}", quiet=True)) for i in range(3)),
    )
    # At 5.2 the calls b6 and b7 have waited 5.2 s, more than the 3 s head start: the quiet
    # calls come after them; every call of the backlog still goes.
    assert order == ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "q0", "q1", "q2"]


def test_the_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SesBudget(MemorySlotStore(), rate=0, send_rate=1)
    with pytest.raises(ValueError, match="positive"):
        SesBudget(MemorySlotStore(), rate=1, send_rate=0)


def test_sending_has_a_budget_of_its_own() -> None:
    time = VirtualTime()
    budget = budget_on(time, rate=1.0, send_rate=14.0)
    waits = time.run(
        budget.acquire("us-east-1"),
        budget.acquire("us-east-1", Quota.SEND),
        time.at(0.0, budget.acquire("us-east-1", Quota.SEND)),
        time.at(0.0, budget.acquire("us-east-1")),
    )
    assert waits == pytest.approx([0.0, 0.0, 1 / 14, 1.0])


@pytest.mark.parametrize(
    ("code", "message", "throttled"),
    [
        ("Throttling", "Rate exceeded", True),
        ("Throttling", "Maximum sending rate exceeded.", True),
        ("TooManyRequestsException", "Too Many Requests", True),
        ("ThrottlingException", "Rate exceeded", True),
        ("LimitExceeded", "Maximum request rate exceeded", True),
        # Not rates: waiting seconds does not help, so these are the caller's to judge.
        ("Throttling", "Daily message quota exceeded.", False),
        ("LimitExceededException", "Maximum number of identities reached", False),
        ("AccessDeniedException", "not allowed", False),
        ("InternalFailure", "boom", False),
    ],
)
def test_only_refusals_for_rate_are_throttling(code: str, message: str, throttled: bool) -> None:
    assert is_throttled(SesError(code, message, retryable=True)) is throttled


class _Ses:
    """An SES call that is throttled `throttles` times, then answers."""

    def __init__(self, throttles: int, then: BaseException | None = None) -> None:
        self.throttles = throttles
        self.then = then
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.throttles:
            raise SesError("TooManyRequestsException", "Too Many Requests", retryable=True)
        if self.then is not None:
            raise self.then
        return "answer"


def test_a_throttled_call_is_made_again_each_time_in_a_slot_of_its_own() -> None:
    time = VirtualTime()
    store = MemorySlotStore(time.clock)
    budget = SesBudget(store, rate=1.0, send_rate=1.0, sleep=time.sleep)
    ses = _Ses(throttles=3)
    made: list[float] = []

    async def timed() -> str:
        made.append(time.now)
        return await ses()

    assert time.run(budget.call("us-east-1", timed)) == ["answer"]
    assert ses.calls == 4
    assert store.throttles == {budget.bucket("us-east-1"): 3}
    # Each retry waits for a slot of its own: paced like any other call, never a storm.
    assert made == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_headroom_spaces_the_slots_a_little_wider_than_the_quota() -> None:
    time = VirtualTime()
    budget = budget_on(time, rate=1.0, send_rate=10.0, headroom=0.2)
    waits = time.run(
        budget.acquire("us-east-1"),
        time.at(0.0, budget.acquire("us-east-1")),
        budget.acquire("us-east-1", Quota.SEND),
        time.at(0.0, budget.acquire("us-east-1", Quota.SEND)),
    )
    assert waits == pytest.approx([0.0, 1.25, 0.0, 0.125])
    with pytest.raises(ValueError, match="headroom"):
        SesBudget(MemorySlotStore(), rate=1.0, send_rate=1.0, headroom=1.0)


def test_any_other_failure_is_raised_as_the_call_raised_it() -> None:
    time = VirtualTime()
    budget = budget_on(time, rate=1.0)
    refusal = SesError("AccessDeniedException", "not allowed", retryable=False)
    ses = _Ses(throttles=1, then=refusal)
    with pytest.raises(SesError) as raised:
        time.run(budget.call("us-east-1", ses))
    assert raised.value is refusal
    assert ses.calls == 2


def test_a_caller_cancelled_while_queued_leaves_the_queue() -> None:
    time = VirtualTime()
    store = MemorySlotStore(time.clock)
    budget = SesBudget(store, rate=1.0, send_rate=1.0, sleep=time.sleep)

    async def go() -> list[float]:
        first = await budget.acquire("us-east-1")
        queued = asyncio.ensure_future(budget.acquire("us-east-1"))
        for _ in range(5):
            await asyncio.sleep(0)  # it asked, and sleeps queued
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        return [first, await time.at(0.6, budget.acquire("us-east-1"))]

    # The cancelled caller holds no place: the next caller books the slot at 1.0.
    assert time.run(go()) == [pytest.approx([0.0, 0.4])]


def test_the_timeout_bounds_the_call_not_the_wait_for_its_slot() -> None:
    async def go() -> None:
        budget = SesBudget(MemorySlotStore(), rate=5.0, send_rate=1.0)
        for _ in range(3):  # the third waits 0.4 s for its slot, longer than the timeout
            await budget.call("us-east-1", _Ses(0), timeout=0.3)

        async def slow() -> str:
            await asyncio.sleep(1)
            return "late"

        with pytest.raises(TimeoutError):
            await budget.call("us-east-1", slow, timeout=0.05)

    asyncio.run(go())


class _CountingSlots(MemorySlotStore):
    def __init__(self) -> None:
        super().__init__()
        self.reserved = 0

    async def reserve(self, bucket: str, spacing: float, ask: Ask) -> Reservation:
        self.reserved += 1
        return await super().reserve(bucket, spacing, ask)


def test_a_caller_woken_too_late_for_its_slot_takes_another() -> None:
    # A stalled host wakes the caller after its slot's headroom has passed: going now could
    # land on the next slot's heels, so it reserves again (here the queue is empty by then,
    # so the new slot is at once).
    async def go() -> int:
        store = _CountingSlots()

        async def late_sleep(seconds: float) -> None:
            await asyncio.sleep(seconds + 0.3)

        budget = SesBudget(store, rate=10.0, send_rate=1.0, headroom=0.2, sleep=late_sleep)
        await budget.acquire("us-east-1")  # the first slot is now: no sleep
        await budget.acquire("us-east-1")  # sleeps, wakes 0.3 s late, reserves again
        return store.reserved

    assert asyncio.run(go()) == 3


def test_a_caller_woken_within_the_headroom_keeps_its_slot() -> None:
    async def go() -> int:
        sleeps = 0

        async def sleep(seconds: float) -> None:
            nonlocal sleeps
            sleeps += 1
            await asyncio.sleep(seconds)

        store = _CountingSlots()
        budget = SesBudget(store, rate=10.0, send_rate=1.0, headroom=0.5, sleep=sleep)
        await budget.acquire("us-east-1")
        await budget.acquire("us-east-1")
        return store.reserved

    assert asyncio.run(go()) == 2


def test_a_call_in_a_slot_reserved_earlier_is_held_to_that_slot() -> None:
    # The verifier reserves a slot, then gathers the identities to ask about into the call.
    # If that took longer than the slot's headroom, the request would leave on the next
    # slot's heels: right before it leaves (botocore's before-send hook) it takes a new slot.
    async def go() -> int:
        store = _CountingSlots()
        budget = SesBudget(store, rate=10.0, send_rate=1.0, headroom=0.2)

        async def request() -> int:
            await hold_to_slot()  # as the SES client's hook runs it, right before sending
            return store.reserved

        due = await budget.reserve("us-east-1")
        await asyncio.sleep(0.1)  # gathering: four times the headroom (25 ms)
        return await budget.call("us-east-1", request, reserved=due)

    assert asyncio.run(go()) == 2
