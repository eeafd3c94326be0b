"""A registration ending soon, over the real database and broker: the owners are asked to be
mailed once per expiry date, on the internal `notification.requested`, while the status stays.

The verifier's scheduled answers are fed through the api's own handlers (as its consumers
would), so the warnings kept between two verifications go through the real repository.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    DnsWarning,
    RecordCheck,
    RecordKind,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, listening, unique

pytestmark = pytest.mark.integration


async def _watched(
    api: ApiHarness, team: NewKey, domain: dict[str, Any], ends: datetime | None
) -> None:
    """A scheduled verification that passes, carrying the watch's expiry warning (if any)."""
    zone = domain["domain"].split(".", 1)[1]
    warnings = (
        [
            DnsWarning(
                code="registration_expiring",
                name=zone,
                found=[ends.isoformat()],
                message=f"The registration of {zone} expires on {ends.date().isoformat()}.",
            )
        ]
        if ends is not None
        else []
    )
    event = VerificationCompleted(
        correlation_id=unique("req_"),
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        trigger=VerificationTrigger.SCHEDULED,
        outcome=VerificationOutcome.PASSED,
        ses_dkim_status=DkimStatus.SUCCESS,
        checks=[
            RecordCheck(record=kind, outcome=CheckOutcome.PASS, name=domain["domain"], expected="x")
            for kind in RecordKind
        ],
        checked_at=datetime.now(UTC),
        warnings=warnings,
    )
    await api.call(api.handlers.on_verification_completed, event)


async def test_owners_are_asked_about_each_expiry_date_once(api: ApiHarness, team: NewKey) -> None:
    domain = await api.verified_domain(team)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    later = soon + timedelta(days=365)
    async with listening(api, "notification.requested") as heard:
        await _watched(api, team, domain, soon)
        await _watched(api, team, domain, soon)  # six hours later: no news
        await _watched(api, team, domain, soon)
        await _watched(api, team, domain, later)  # renewed, and close again
        heard_all: list[dict[str, Any]] = []

        def expiries() -> list[dict[str, Any]]:
            # The verified mail's request may still be on its way from the relay.
            return [a for a in heard_all if a["reason_code"] == "registration_expiring"]

        while len(expiries()) < 2:
            heard_all.append(json.loads((await asyncio.wait_for(heard.get(), 30)).body))
        await asyncio.sleep(2.0)  # anything published behind them has arrived by now
        while not heard.empty():
            heard_all.append(json.loads(heard.get_nowait().body))
    asked = expiries()

    assert sorted(a["registration_expires_at"] for a in asked) == [
        soon.isoformat().replace("+00:00", "Z"),
        later.isoformat().replace("+00:00", "Z"),
    ]
    assert {(a["old_status"], a["new_status"]) for a in asked} == {("verified", "verified")}
    assert {tuple(a["owner_emails"]) for a in asked} == {("owner@example.com",)}
    assert len({a["transition_event_id"] for a in asked}) == 2
    assert await api.status_of(domain["id"]) == "verified"

    shown = await api.client.get(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert shown.status_code == 200, shown.text
    assert [w["code"] for w in shown.json()["data"]["warnings"]] == ["registration_expiring"]
