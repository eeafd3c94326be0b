"""No property test can fail because the machine is busy: Hypothesis's clocks are off suite-wide."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parents[1]


def test_the_loaded_profile_has_no_deadline_and_no_too_slow_check() -> None:
    loaded = settings.default
    assert loaded is not None
    assert loaded.deadline is None
    assert HealthCheck.too_slow in loaded.suppress_health_check


def test_no_test_sets_a_deadline_of_its_own() -> None:
    # An explicit @settings(deadline=...) would override the profile for that test alone.
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg != "deadline":
                    continue
                if not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None):
                    offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert offenders == []
