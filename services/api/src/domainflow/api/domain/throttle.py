"""How often a team may ask for domain work: a GCRA, so a burst is allowed and then a rate.

Every create, verify and delete costs SES requests from a budget all teams share (one
non-send request a second per account and region), so one team's loop must not starve the
others or the six-hourly re-verification. The theoretical arrival time `tat` moves one
interval per admitted request; a request is admitted while `tat` is at most `burst - 1`
intervals ahead of now. `adapters/throttle.py` keeps `tat` in the database, where every api
replica shares it, and decides with this rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    admitted: bool
    tat: float  # the theoretical arrival time after this request
    retry_after: float  # seconds until a request would be admitted (0 when admitted)


def admit(tat: float | None, now: float, *, rate: float, burst: int) -> Decision:
    interval = 1.0 / rate
    current = now if tat is None else max(tat, now)
    ahead = current - now
    limit = (burst - 1) * interval
    if ahead <= limit:
        return Decision(True, current + interval, 0.0)
    return Decision(False, current, ahead - limit)
