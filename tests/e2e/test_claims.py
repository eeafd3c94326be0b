"""Claims through all four services: the DoH sandbox decides who owns a name, moto and
Postfix's map show who got it."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from domainflow.contracts import DnsRecords
from tests.e2e.conftest import E2E, REVERIFY_INTERVAL, eventually
from tests.plugins.mailserver import PostmapQuery

pytestmark = pytest.mark.e2e

CLAIMS = "/domains/claims"


def _name() -> str:
    return f"mail.claim-{uuid.uuid4().hex[:8]}.example"


async def _team(e2e: E2E, label: str) -> tuple[str, str]:
    owner = f"{label}-{uuid.uuid4().hex[:6]}@owners.example"
    return await e2e.key(f"e2e-{label}-{uuid.uuid4().hex[:4]}", (owner,)), owner


async def _claim(e2e: E2E, key: str, name: str) -> tuple[int, dict[str, Any]]:
    """Claim `name`, following 202s (the same Idempotency-Key joins the same claim)."""
    idempotency = uuid.uuid4().hex
    for _ in range(30):
        async with e2e.http.post(
            e2e.url(CLAIMS),
            json={"domain": name},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency},
        ) as answer:
            status, body = answer.status, await answer.json()
        if status != 202:
            return status, body
        await asyncio.sleep(1.0)
    raise AssertionError(f"the claim of {name} never settled: {body}")


async def _held(e2e: E2E, key: str, name: str) -> tuple[str, DnsRecords]:
    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    return body["data"]["id"], DnsRecords.model_validate(body["data"]["dns_records"])


async def test_b_claims_a_name_a_holds_unproven_and_gets_it_with_a_new_identity(
    e2e: E2E, postmap_query: PostmapQuery
) -> None:
    a_key, a_owner = await _team(e2e, "squatter")
    b_key, _ = await _team(e2e, "owner")
    name = _name()
    a_id, a_records = await _held(e2e, a_key, name)

    # B adds the name: refused, but told how to claim it, without a word of who holds it.
    status, body = await e2e.call("POST", "/domains", b_key, json={"domain": name})
    assert status == 409, body
    error = body["error"]
    assert error["reason"] == "domain_exists"
    assert a_id not in str(body)
    claim = error["details"]["claim"]
    assert claim["endpoint"] == "/api/v1/domains/claims"
    record = claim["record"]
    assert record["name"] == a_records.verification.name
    assert record["value"] != a_records.verification.value  # B's own value

    e2e.dns.set_records(record["name"], "TXT", [record["value"]])
    status, body = await _claim(e2e, b_key, name)
    assert status == 200, body
    assert body["data"]["status"] == "completed"
    b_id = body["data"]["domain_id"]
    assert b_id
    assert b_id != a_id

    status, _ = await e2e.call("GET", f"/domains/{a_id}", a_key)
    assert status == 404
    b_domain = await eventually(lambda: _provisioned(e2e, b_key, b_id), timeout=60)
    assert len(b_domain["dns_records"]["dkim"]) == 3
    # A's SES identity was deleted and B's created afresh (moto hands out the same three
    # tokens for every identity, so the sagas, not the tokens, show the replacement).
    assert await _sagas(e2e, a_id) == {("provision", "completed"), ("deprovision", "completed")}
    assert await _sagas(e2e, b_id) >= {("provision", "completed")}
    _, timeline = await e2e.call("GET", f"/domains/{b_id}/timeline", b_key)
    assert "claimed" in [line["happening"] for line in timeline["data"]["items"]]

    # A's owners hear of it exactly once.
    await eventually(lambda: e2e.emails_to(a_owner), timeout=60)
    await asyncio.sleep(REVERIFY_INTERVAL * 2)
    mails = e2e.emails_to(a_owner)
    assert len(mails) == 1, mails
    assert "claimed" in str(mails[0].subject)

    # B's TXT is there: its first verification puts the name live on the mail server.
    assert await eventually(lambda: postmap_query(name), timeout=60) == name
    e2e.dns.remove_domain(name)


async def _sagas(e2e: E2E, domain_id: str) -> set[tuple[str, str]]:
    """The provisioner's finished sagas of a domain (a deprovision only if it deleted the
    SES identity)."""
    connection = await asyncpg.connect(e2e.stack.env["DOMAINFLOW_PROVISIONER_DATABASE_URL"])
    try:
        rows = await connection.fetch(
            "SELECT kind, state, steps FROM sagas WHERE domain_id = $1", domain_id
        )
    finally:
        await connection.close()
    found = set()
    for row in rows:
        steps = json.loads(row["steps"]) if isinstance(row["steps"], str) else row["steps"]
        deleted = {"step": "ses_identity", "status": "done"} in steps
        if row["kind"] != "deprovision" or deleted:
            found.add((row["kind"], row["state"]))
    return found


async def _provisioned(e2e: E2E, key: str, public_id: str) -> dict[str, Any] | None:
    status, body = await e2e.call("GET", f"/domains/{public_id}", key)
    if status != 200 or body["data"]["state"] == "provisioning":
        return None
    data: dict[str, Any] = body["data"]
    return data


async def test_a_claim_against_a_verified_holder_whose_txt_is_up_is_refused(e2e: E2E) -> None:
    a_key, _ = await _team(e2e, "holder")
    b_key, _ = await _team(e2e, "rival")
    name = _name()
    a_id, a_records = await _held(e2e, a_key, name)
    e2e.dns.place(a_records)
    status, body = await e2e.call("POST", f"/domains/{a_id}/verify", a_key)
    assert body["data"]["status"] == "verified", body

    status, body = await e2e.call("POST", "/domains", b_key, json={"domain": name})
    b_value = body["error"]["details"]["claim"]["record"]["value"]
    e2e.dns.set_records(a_records.verification.name, "TXT", [a_records.verification.value, b_value])
    status, body = await _claim(e2e, b_key, name)
    assert status == 409, body
    assert body["error"]["reason"] == "claim_holder_proven"
    assert "DNS" in body["error"]["message"]
    status, body = await e2e.call("GET", f"/domains/{a_id}", a_key)
    assert status == 200
    assert body["data"]["verification_status"] == "verified"
    e2e.dns.remove_domain(name)


async def test_a_claim_without_the_claimants_txt_is_refused_with_the_expected_record(
    e2e: E2E,
) -> None:
    a_key, _ = await _team(e2e, "holder")
    b_key, _ = await _team(e2e, "hopeful")
    name = _name()
    a_id, _ = await _held(e2e, a_key, name)
    status, body = await _claim(e2e, b_key, name)
    assert status == 409, body
    assert body["error"]["reason"] == "claim_txt_missing"
    expected = body["error"]["details"]["expected_record"]
    assert expected["type"] == "TXT"
    assert expected["name"] == f"_sendmux.{name}"
    assert expected["value"].startswith("sendmux-verify=")
    status, _ = await e2e.call("GET", f"/domains/{a_id}", a_key)
    assert status == 200  # A keeps it


async def test_a_claim_on_a_name_with_the_holders_mailboxes_waits_for_them(e2e: E2E) -> None:
    a_key, _ = await _team(e2e, "hoster")
    b_key, _ = await _team(e2e, "heir")
    name = _name()
    a_id, a_records = await _held(e2e, a_key, name)
    e2e.dns.place(a_records)
    status, body = await e2e.call("POST", f"/domains/{a_id}/verify", a_key)
    assert body["data"]["status"] == "verified", body
    status, body = await e2e.call("POST", "/mailboxes", a_key, json={"address": f"ceo@{name}"})
    assert status == 201, body
    mailbox = body["data"]["id"]

    # A's TXT is gone and B's is up: the name would move, but A's mailbox goes first.
    status, body = await e2e.call("POST", "/domains", b_key, json={"domain": name})
    b_record = body["error"]["details"]["claim"]["record"]
    e2e.dns.set_records(b_record["name"], "TXT", [b_record["value"]])
    status, body = await e2e.call("POST", CLAIMS, b_key, json={"domain": name})
    for _ in range(30):  # past the DNS check, it waits, and says why
        if status != 202 or body["data"]["status"] != "checking":
            break
        await asyncio.sleep(1.0)
        status, body = await e2e.call("GET", f"{CLAIMS}/{body['data']['id']}", b_key)
    assert status == 202, body
    claim = body["data"]
    assert claim["status"] == "waiting"
    assert claim["active_mailboxes"] == 1
    assert "mailbox" in claim["reason"]
    status, _ = await e2e.call("GET", f"/domains/{a_id}", a_key)
    assert status == 200

    # A removes its mailbox: the claim is checked again, and B gets the name.
    status, _ = await e2e.call("DELETE", f"/mailboxes/{mailbox}", a_key)
    assert status == 200

    async def completed() -> dict[str, Any] | None:
        _, body = await e2e.call("GET", f"{CLAIMS}/{claim['id']}", b_key)
        data: dict[str, Any] = body["data"]
        return data if data["status"] == "completed" else None

    done = await eventually(completed, timeout=60)
    assert done["domain_id"]
    status, _ = await e2e.call("GET", f"/domains/{a_id}", a_key)
    assert status == 404
    e2e.dns.remove_domain(name)
