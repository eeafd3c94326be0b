"""The SES budget: slots spaced 1/rate apart in arrival order, throttling waited out."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.kit.aws import SesError
from domainflow.kit.ses_budget import (
    MemorySlotStore,
    Quota,
    SesBudget,
    is_throttled,
    reserve_slot,
)


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
    clock = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = SesBudget(
        MemorySlotStore(lambda: clock[0]), rate=2.0, send_rate=1.0, sleep=fake_sleep
    )

    async def burst() -> list[float]:
        return [await limiter.acquire("us-east-1") for _ in range(10)]

    waits = asyncio.run(burst())
    # All ten asked at t=0: the first goes now, the rest at 0.5 s steps.
    assert waits == pytest.approx([0.0, *(0.5 * i for i in range(1, 10))])
    assert slept == pytest.approx([0.5 * i for i in range(1, 10)])


def test_regions_and_accounts_have_budgets_of_their_own() -> None:
    store = MemorySlotStore(lambda: 0.0)

    async def no_sleep(_: float) -> None:
        return None

    a = SesBudget(store, rate=1.0, send_rate=1.0, account="111", sleep=no_sleep)
    b = SesBudget(store, rate=1.0, send_rate=1.0, account="222", sleep=no_sleep)

    async def go() -> list[float]:
        return [
            await a.acquire("us-east-1"),
            await a.acquire("eu-west-1"),
            await b.acquire("us-east-1"),
            await a.acquire("us-east-1"),
        ]

    assert asyncio.run(go()) == [0.0, 0.0, 0.0, 1.0]


def test_a_late_caller_waits_only_for_the_slots_already_reserved() -> None:
    # An on-demand verify arriving during a cycle queues behind the one call the cycle has
    # reserved, not behind the whole cycle: slots are reserved right before each call.
    clock = [0.0]
    store = MemorySlotStore(lambda: clock[0])

    async def no_sleep(_: float) -> None:
        return None

    limiter = SesBudget(store, rate=1.0, send_rate=1.0, sleep=no_sleep)

    async def go() -> float:
        await limiter.acquire("us-east-1")  # the cycle's call at t=0
        clock[0] = 0.2
        return await limiter.acquire("us-east-1")  # the manual verify

    assert asyncio.run(go()) == pytest.approx(0.8)


def test_the_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SesBudget(MemorySlotStore(), rate=0, send_rate=1)
    with pytest.raises(ValueError, match="positive"):
        SesBudget(MemorySlotStore(), rate=1, send_rate=0)


def test_sending_has_a_budget_of_its_own() -> None:
    store = MemorySlotStore(lambda: 0.0)

    async def no_sleep(_: float) -> None:
        return None

    budget = SesBudget(store, rate=1.0, send_rate=14.0, sleep=no_sleep)

    async def go() -> list[float]:
        return [
            await budget.acquire("us-east-1"),
            await budget.acquire("us-east-1", Quota.SEND),
            await budget.acquire("us-east-1", Quota.SEND),
            await budget.acquire("us-east-1"),
        ]

    assert asyncio.run(go()) == pytest.approx([0.0, 0.0, 1 / 14, 1.0])


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
    clock = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    store = MemorySlotStore(lambda: clock[0])
    budget = SesBudget(store, rate=1.0, send_rate=1.0, sleep=sleep)
    ses = _Ses(throttles=3)
    assert asyncio.run(budget.call("us-east-1", ses)) == "answer"
    assert ses.calls == 4
    assert store.throttles == {budget.bucket("us-east-1"): 3}
    # Each retry waits for a slot of its own: paced like any other call, never a storm.
    assert waits == pytest.approx([1.0, 2.0, 3.0])


def test_headroom_spaces_the_slots_a_little_wider_than_the_quota() -> None:
    async def no_sleep(_: float) -> None:
        return None

    budget = SesBudget(
        MemorySlotStore(lambda: 0.0), rate=1.0, send_rate=10.0, headroom=0.2, sleep=no_sleep
    )

    async def go() -> list[float]:
        return [
            await budget.acquire("us-east-1"),
            await budget.acquire("us-east-1"),
            await budget.acquire("us-east-1", Quota.SEND),
            await budget.acquire("us-east-1", Quota.SEND),
        ]

    assert asyncio.run(go()) == pytest.approx([0.0, 1.25, 0.0, 0.125])
    with pytest.raises(ValueError, match="headroom"):
        SesBudget(MemorySlotStore(), rate=1.0, send_rate=1.0, headroom=1.0)


def test_any_other_failure_is_raised_as_the_call_raised_it() -> None:
    async def no_sleep(_: float) -> None:
        return None

    budget = SesBudget(MemorySlotStore(lambda: 0.0), rate=1.0, send_rate=1.0, sleep=no_sleep)
    refusal = SesError("AccessDeniedException", "not allowed", retryable=False)
    ses = _Ses(throttles=1, then=refusal)
    with pytest.raises(SesError) as raised:
        asyncio.run(budget.call("us-east-1", ses))
    assert raised.value is refusal
    assert ses.calls == 2


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

    async def reserve(self, bucket: str, spacing: float) -> float:
        self.reserved += 1
        return await super().reserve(bucket, spacing)


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
