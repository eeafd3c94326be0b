"""The order a pass claims in: every SES account's first batch before any account's second."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from domainflow.kit.database import Database
from domainflow.verifier.adapters import repository
from domainflow.verifier.cycle import ReverifyCycle
from domainflow.verifier.probe import DomainProbe
from domainflow.verifier.schedule import DueDomain


async def test_every_accounts_first_claim_goes_before_any_accounts_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str | None] = []

    async def due_accounts(db: Database, due_by: datetime) -> list[str]:
        return ["acct-a", "acct-b", "acct-c"]

    async def claim_due(db: Database, *, account: str | None, **_: Any) -> list[DueDomain]:
        # The pool hands claims out in turn: the order they are asked in is the order served.
        asked.append(account)
        await asyncio.sleep(0)
        return []

    monkeypatch.setattr(repository, "due_accounts", due_accounts)
    monkeypatch.setattr(repository, "claim_due", claim_due)

    async def now() -> datetime:
        return datetime(2026, 12, 2, tzinfo=UTC)

    cycle = ReverifyCycle(
        cast(Database, None),
        cast(DomainProbe, None),
        interval=timedelta(hours=6),
        tick=1.0,
        batch=500,
        lease=60.0,
        parallel_claims=2,
        clock=now,
    )
    await cycle.run_once()

    assert asked == ["acct-a", "acct-b", "acct-c", "acct-a", "acct-b", "acct-c"]
