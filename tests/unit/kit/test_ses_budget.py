"""The SES budget's core: slots spaced 1/rate apart, handed out in arrival order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.verifier.ratelimit import MemorySlotStore, SesRateLimiter, reserve_slot


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

    limiter = SesRateLimiter(MemorySlotStore(lambda: clock[0]), rate=2.0, sleep=fake_sleep)

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

    a = SesRateLimiter(store, rate=1.0, account="111", sleep=no_sleep)
    b = SesRateLimiter(store, rate=1.0, account="222", sleep=no_sleep)

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

    limiter = SesRateLimiter(store, rate=1.0, sleep=no_sleep)

    async def go() -> float:
        await limiter.acquire("us-east-1")  # the cycle's call at t=0
        clock[0] = 0.2
        return await limiter.acquire("us-east-1")  # the manual verify

    assert asyncio.run(go()) == pytest.approx(0.8)


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SesRateLimiter(MemorySlotStore(), rate=0)
