"""Forgetting what no longer protects anything: tables that grow with every event are trimmed.

The inbox exists to drop a redelivered event, and redeliveries come within minutes (a nack,
a relay publishing twice after a crash). A message parked in a DLQ was never processed, so
it is in no inbox, and replaying it stays correct however old it is. Rows older than their
retention are deleted in bounded batches, so a trim never holds long locks or long
transactions on a busy table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from domainflow.kit.database import Database
from domainflow.kit.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Trim:
    """Rows of `table` whose `age_column` is older than `keep` go; `only` narrows it (SQL)."""

    table: str  # code, never input
    age_column: str
    keep: timedelta
    only: str = "true"


def inbox_trim(keep: timedelta) -> Trim:
    return Trim("inbox", "processed_at", keep)


async def trim(db: Database, rule: Trim, *, batch: int = 5000) -> int:
    """Delete what `rule` no longer keeps; returns how many rows went."""
    aged = f"{rule.age_column} < now() - $1::interval AND ({rule.only})"
    statement = (
        f"DELETE FROM {rule.table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {rule.table} WHERE {aged} LIMIT $2))"
    )
    removed = 0
    while True:
        async with db.pool.acquire() as conn:
            status = await conn.execute(statement, rule.keep, batch)
        count = int(status.rsplit(" ", 1)[-1])
        removed += count
        if count < batch:
            return removed


async def keep_trimmed(db: Database, rules: Sequence[Trim], *, every: float) -> None:
    """Trim every rule, then wait `every` seconds; until cancelled."""
    while True:
        for rule in rules:
            try:
                removed = await trim(db, rule)
            except Exception:  # the next round tries again; the service must not stop
                log.exception("retention.failed", table=rule.table)
                continue
            if removed:
                log.info("retention.trimmed", table=rule.table, rows=removed)
        await asyncio.sleep(every)
