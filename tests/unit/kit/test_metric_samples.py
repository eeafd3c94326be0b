"""Samples are written exactly: Prometheus must read back the count the database gave."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domainflow.kit.metrics import sample_value


def test_large_counts_keep_every_digit() -> None:
    assert sample_value(1_234_567) == "1234567"
    assert sample_value(0) == "0"
    assert sample_value(90.25) == "90.25"


@given(st.one_of(st.integers(0, 10**15), st.floats(0, 1e9, allow_nan=False)))
def test_a_sample_reads_back_as_the_value(value: float) -> None:
    assert float(sample_value(value)) == float(value)
