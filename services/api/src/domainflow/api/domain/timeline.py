"""What goes on a domain's timeline: every change a person would ask about, never the hum.

A domain re-verified every six hours for a year would write 1,460 identical lines; the
timeline keeps the moments something changed instead: every status change, every probe
whose outcome or set of failing records differs from the one before, and every probe a
caller asked for (they will look for its answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Failing = frozenset[tuple[str, str | None]]


def failing_of(checks: Iterable[Mapping[str, Any]] | None) -> Failing:
    """The records that did not pass, each with its reason code."""
    return frozenset(
        (str(c.get("record")), c.get("reason")) for c in checks or () if c.get("outcome") != "pass"
    )


def worth_noting(
    *,
    changed_status: bool,
    asked_for: bool,
    outcome: str | None,
    previous_outcome: str | None,
    failing: Failing,
    previous_failing: Failing,
) -> bool:
    """Whether an applied event earns a line on the timeline."""
    return changed_status or asked_for or outcome != previous_outcome or failing != previous_failing
