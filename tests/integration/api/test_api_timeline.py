"""`GET /domains/{id}/timeline`: what happened to a domain, why, and which request did it.

The provisioner's and verifier's answers are fed through the api's own handlers (as its
consumers would), over the real database, so each line is written by the code that runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    RecordCheck,
    RecordKind,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, unique

pytestmark = pytest.mark.integration


async def _probe(
    api: ApiHarness,
    team: NewKey,
    domain: dict[str, Any],
    failing: dict[RecordKind, str] | None = None,
    *,
    inconclusive: bool = False,
    trigger: VerificationTrigger = VerificationTrigger.SCHEDULED,
) -> str:
    """Feed the api one verdict: `failing` maps a record to its reason. Returns its request id."""
    failing = failing or {}

    def outcome_of(kind: RecordKind) -> CheckOutcome:
        if inconclusive:
            return CheckOutcome.INCONCLUSIVE
        return CheckOutcome.FAIL if kind in failing else CheckOutcome.PASS

    if inconclusive:
        verdict = VerificationOutcome.INCONCLUSIVE
    else:
        verdict = VerificationOutcome.FAILED if failing else VerificationOutcome.PASSED
    request_id = unique("req_")
    event = VerificationCompleted(
        correlation_id=request_id,
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        trigger=trigger,
        outcome=verdict,
        ses_dkim_status=None if inconclusive else DkimStatus.SUCCESS,
        checks=[
            RecordCheck(
                record=kind,
                outcome=outcome_of(kind),
                name=domain["domain"],
                expected=f"expected {kind.value}",
                found=["something else"] if kind in failing else [],
                reason=failing.get(kind, "resolver_unavailable" if inconclusive else None),
            )
            for kind in RecordKind
        ],
        checked_at=datetime.now(UTC),
    )
    await api.call(api.handlers.on_verification_completed, event)
    return request_id


async def _timeline(api: ApiHarness, team: NewKey, domain_id: str, **params: Any) -> Any:
    response = await api.client.get(
        f"{DOMAINS}/{domain_id}/timeline", params=params, headers=auth(team.plaintext)
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_a_domains_life_reads_newest_first_and_the_steady_state_adds_nothing(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.pending_domain(team)
    passed = await _probe(api, team, domain)
    for _ in range(3):  # every six hours, all well: nothing new to tell
        await _probe(api, team, domain)
    broke = await _probe(api, team, domain, {RecordKind.SPF: "record_missing"})

    items = (await _timeline(api, team, domain["id"]))["items"]
    assert [(i["happening"], i["status_before"], i["status_after"]) for i in items] == [
        ("verification_completed", "verified", "pending"),
        ("ownership_proven", "verified", "verified"),  # the first sight of its TXT: live
        ("verification_completed", "pending", "verified"),
        ("provisioned", "provisioning", "pending"),
        ("requested", None, "provisioning"),
    ]
    latest = items[0]
    assert latest["request_id"] == broke
    assert latest["outcome"] == "failed"
    assert latest["reason"] == "verification failed (scheduled)"
    assert [(c["record"], c["reason"], c["found"]) for c in latest["failing_checks"]] == [
        ("spf", "record_missing", ["something else"])
    ]
    assert items[1]["request_id"] == items[2]["request_id"] == passed
    assert items[2]["failing_checks"] == []
    assert items[4]["reason"].startswith("added in ")
    assert items[0]["at"] >= items[2]["at"] >= items[4]["at"]


async def test_a_change_in_what_fails_is_noted_even_when_the_status_stays(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.pending_domain(team)
    await _probe(api, team, domain, {RecordKind.MX: "value_mismatch"})  # pending stays
    await _probe(api, team, domain, {RecordKind.MX: "value_mismatch"})  # the same: no line
    await _probe(api, team, domain, {RecordKind.DMARC: "dmarc_policy_too_weak"})
    resolver_down = await _probe(api, team, domain, inconclusive=True)
    weak_dmarc = {RecordKind.DMARC: "dmarc_policy_too_weak"}
    manual = VerificationTrigger.MANUAL
    asked = await _probe(api, team, domain, weak_dmarc, trigger=manual)
    asked_again = await _probe(api, team, domain, weak_dmarc, trigger=manual)

    items = (await _timeline(api, team, domain["id"]))["items"]
    assert [(i["outcome"], i["status_after"]) for i in items] == [
        ("failed", "pending"),  # asked for: always noted, the caller will look for it
        ("failed", "pending"),  # asked for
        ("inconclusive", "pending"),
        ("failed", "pending"),  # dmarc now, not mx
        (None, "pending"),  # ownership proven: its TXT passed at the first probe
        ("failed", "pending"),  # the first failure
        (None, "pending"),  # provisioned
        (None, "provisioning"),  # requested
    ]
    assert [items[0]["request_id"], items[1]["request_id"]] == [asked_again, asked]
    assert items[2]["request_id"] == resolver_down
    assert {c["reason"] for c in items[2]["failing_checks"]} == {"resolver_unavailable"}
    assert items[2]["ses_dkim_status"] is None
    assert [c["record"] for c in items[3]["failing_checks"]] == ["dmarc"]
    assert items[4]["happening"] == "ownership_proven"
    assert [c["record"] for c in items[5]["failing_checks"]] == ["mx"]


async def test_pages_walk_the_whole_timeline_once(api: ApiHarness, team: NewKey) -> None:
    domain = await api.pending_domain(team)
    for n in range(5):  # alternate, so every probe is a change
        await _probe(api, team, domain, {RecordKind.MX: "record_missing"} if n % 2 else None)
    whole = (await _timeline(api, team, domain["id"], limit=100))["items"]
    assert len(whole) == 8  # with the line of its ownership proven

    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await _timeline(api, team, domain["id"], **params)
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert seen == whole


async def test_deletion_is_on_the_timeline_and_others_see_nothing(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.pending_domain(team)
    deleting = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert deleting.status_code == 200, deleting.text
    items = (await _timeline(api, team, domain["id"]))["items"]
    assert (items[0]["happening"], items[0]["status_before"], items[0]["status_after"]) == (
        "deletion_requested",
        "pending",
        "deleting",
    )
    assert items[0]["request_id"] == deleting.json()["meta"]["request_id"]

    stranger = await api.key()
    other = await api.client.get(
        f"{DOMAINS}/{domain['id']}/timeline", headers=auth(stranger.plaintext)
    )
    assert other.status_code == 404
    assert other.json()["error"]["reason"] == "domain_not_found"
    bad = await api.client.get(
        f"{DOMAINS}/{domain['id']}/timeline?cursor=nonsense", headers=auth(team.plaintext)
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["reason"] == "invalid_cursor"
