"""A started service's collector: start-up frozen once, generations spaced as configured."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from domainflow.kit.collector import settle_collector
from domainflow.kit.settings import CollectorSettings


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_thresholds_are_the_settings_and_the_heap_is_frozen_once() -> None:
    settle_collector(CollectorSettings(young_threshold=12_345, middle_threshold=7, old_threshold=9))
    assert gc.get_threshold() == (12_345, 7, 9)
    frozen = gc.get_freeze_count()
    assert frozen > 0

    settle_collector(CollectorSettings())
    assert gc.get_threshold() == (20_000, 50, 100)
    # A second app in the same process (tests build many) freezes nothing more.
    assert gc.get_freeze_count() == frozen
