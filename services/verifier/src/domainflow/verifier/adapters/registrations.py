"""SQL for the registration watch: each zone's nameservers and expiry as last seen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domainflow.kit.database import Database
from domainflow.verifier.registration import Registration


async def load(db: Database, zones: Sequence[str]) -> dict[str, tuple[Registration, datetime]]:
    """What was last seen of `zones`, and when."""
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT zone, nameservers, expires_at, checked_at FROM registration"
            " WHERE zone = ANY($1::text[])",
            list(zones),
        )
    return {
        row["zone"]: (
            Registration(row["zone"], tuple(row["nameservers"]), row["expires_at"]),
            row["checked_at"],
        )
        for row in rows
    }


async def save(db: Database, seen: Sequence[Registration], at: datetime) -> None:
    """Record what was just seen (one statement for the whole batch)."""
    if not seen:
        return
    async with db.pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO registration (zone, nameservers, expires_at, checked_at)
            SELECT zone, string_to_array(nameservers, ' '), expires_at, $4
            FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(zone, nameservers,
                                                                        expires_at)
            ON CONFLICT (zone) DO UPDATE
               SET nameservers = EXCLUDED.nameservers,
                   expires_at = EXCLUDED.expires_at,
                   checked_at = EXCLUDED.checked_at
            """,
            [r.zone for r in seen],
            [" ".join(r.nameservers) for r in seen],
            [r.expires_at for r in seen],
            at,
        )
