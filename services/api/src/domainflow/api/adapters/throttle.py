"""The teams' request budgets in the api's database, shared by every api replica.

The rule is `domain/throttle.py`'s; this runs it under the budget row's lock, on the
database's clock, so replicas on skewed hosts still share one budget.
"""

from __future__ import annotations

from domainflow.api.domain.throttle import admit
from domainflow.kit.database import Database


class TeamThrottle:
    """`await throttle.admit(team_id, "domain_writes")` -> 0 when admitted, else seconds to wait."""

    def __init__(self, db: Database, *, rate: float, burst: int) -> None:
        self._db = db
        self._rate = rate
        self._burst = burst

    async def admit(self, team_id: int, bucket: str) -> float:
        if self._rate <= 0:  # no budget configured
            return 0.0
        async with self._db.transaction() as conn:
            await conn.execute(
                # A team's first request starts its budget full: arrival time now.
                "INSERT INTO team_throttle (team_id, bucket, tat)"
                " VALUES ($1, $2, clock_timestamp()) ON CONFLICT DO NOTHING",
                team_id,
                bucket,
            )
            row = await conn.fetchrow(
                "SELECT extract(epoch FROM tat)::float8 AS tat,"
                " extract(epoch FROM clock_timestamp())::float8 AS now"
                " FROM team_throttle WHERE team_id = $1 AND bucket = $2 FOR UPDATE",
                team_id,
                bucket,
            )
            assert row is not None  # inserted above or there already
            decision = admit(row["tat"], row["now"], rate=self._rate, burst=self._burst)
            if decision.admitted:
                await conn.execute(
                    "UPDATE team_throttle SET tat = to_timestamp($3)"
                    " WHERE team_id = $1 AND bucket = $2",
                    team_id,
                    bucket,
                    decision.tat,
                )
        return decision.retry_after
