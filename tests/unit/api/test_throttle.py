"""The team budget's rule (GCRA): a burst, then a steady rate, and a truthful retry-after."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.throttle import admit

arrivals = st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), min_size=1, max_size=80)


def _run(times: list[float], rate: float, burst: int) -> list[tuple[float, bool, float]]:
    tat: float | None = None
    seen = []
    for now in sorted(times):
        decision = admit(tat, now, rate=rate, burst=burst)
        tat = decision.tat
        seen.append((now, decision.admitted, decision.retry_after))
    return seen


def test_a_burst_is_admitted_then_the_rate_holds() -> None:
    seen = _run([0.0] * 6, rate=1.0, burst=4)
    assert [admitted for _, admitted, _ in seen] == [True] * 4 + [False] * 2
    assert seen[4][2] == 1.0  # one interval until the next slot frees
    assert _run([0.0] * 4 + [1.0], rate=1.0, burst=4)[-1][1] is True


@given(arrivals, st.floats(min_value=0.5, max_value=20), st.integers(min_value=1, max_value=10))
def test_no_window_admits_more_than_the_burst_plus_the_rate(
    times: list[float], rate: float, burst: int
) -> None:
    admitted = [now for now, ok, _ in _run(times, rate, burst) if ok]
    for start in admitted:
        window = [t for t in admitted if start <= t < start + 1.0]
        assert len(window) <= burst + rate * 1.0 + 1e-9


@given(arrivals, st.floats(min_value=0.5, max_value=20), st.integers(min_value=1, max_value=10))
def test_waiting_the_retry_after_is_enough(times: list[float], rate: float, burst: int) -> None:
    tat: float | None = None
    for now in sorted(times):
        decision = admit(tat, now, rate=rate, burst=burst)
        if not decision.admitted:
            later = admit(decision.tat, now + decision.retry_after + 1e-9, rate=rate, burst=burst)
            assert later.admitted
            assert decision.retry_after > 0
        tat = decision.tat
