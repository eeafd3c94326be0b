"""Send-only and send-receive domains through their whole life, against the running stack.

Create, verify, upgrade (send-only to send-receive, `PATCH` with `If-Match`) and delete, as a
customer does it, judged by what the outside systems hold: moto's SES (the identity), the DoH
sandbox (the records the customer places, changed as the test goes) and Postfix's own
`postmap -q` over the mail server's map (a send-only domain is never in it; a send-receive
one from the first verification that sees its ownership TXT). moto answers
`Success` for every identity attribute it holds (verification, DKIM, a MAIL FROM domain once
set), so the `ses_*` fields here show SES's reading reaching the domain, not SES's statuses
(those are `tests/integration/verifier/test_verifier_ses_identities.py`'s, through its proxy).
"""

from __future__ import annotations

import uuid
from typing import Any

import aioboto3
import pytest

from domainflow.contracts import DnsRecords
from tests.e2e.conftest import E2E, eventually
from tests.plugins.mailserver import PostmapQuery

pytestmark = pytest.mark.e2e

#: The domain object's fields that only a read of SES fills (`ses_dkim_status` starts pending).
SES_READ = (
    "ses_dkim_signing_enabled",
    "ses_identity_verification_status",
    "ses_mail_from_status",
    "ses_verified_for_sending",
    "ses_identity_checked_at",
)


def _name() -> str:
    return f"mail.modes-{uuid.uuid4().hex[:8]}.example"


async def _ses_identity(e2e: E2E, domain: str) -> bool:
    async with aioboto3.Session().client(
        "ses", region_name="us-east-1", endpoint_url=e2e.moto.url
    ) as ses:
        listed = await ses.list_identities(IdentityType="Domain")
    return domain in listed["Identities"]


async def _gone_from_ses(e2e: E2E, domain: str) -> bool:
    return not await _ses_identity(e2e, domain)


async def _in_map(postmap_query: PostmapQuery, domain: str) -> bool:
    return await postmap_query(domain) == domain


async def _records(e2e: E2E, key: str, public_id: str) -> DnsRecords:
    status, body = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    assert status == 200, body
    return DnsRecords.model_validate(body["data"])


async def _verify(e2e: E2E, key: str, public_id: str) -> dict[str, Any]:
    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    assert status == 200, body
    data: dict[str, Any] = body["data"]
    return data


def _assert_ses_read(data: dict[str, Any]) -> None:
    """Every `ses_*` field as the verifier just read it from moto (Success for all it holds)."""
    assert data["ses_dkim_status"] == "success"
    assert data["ses_dkim_signing_enabled"] is True
    assert data["ses_identity_verification_status"] == "success"
    assert data["ses_mail_from_status"] == "success"  # the provisioner set the MAIL FROM domain
    assert data["ses_verified_for_sending"] is True
    assert data["ses_identity_checked_at"]


async def _delete(e2e: E2E, key: str, public_id: str, name: str, postmap: PostmapQuery) -> None:
    status, body = await e2e.call("DELETE", f"/domains/{public_id}", key)
    assert status == 200, body
    assert (body["data"]["id"], body["data"]["deleted"]) == (public_id, True)
    await eventually(lambda: _gone_from_ses(e2e, name))
    assert await postmap(name) is None
    await eventually(lambda: _answers(e2e, key, public_id, 404))


async def _answers(e2e: E2E, key: str, public_id: str, wanted: int) -> bool:
    status, _ = await e2e.call("GET", f"/domains/{public_id}", key)
    return status == wanted


async def test_send_only_is_never_in_the_mail_server_until_upgraded_then_deleted(
    e2e: E2E, postmap_query: PostmapQuery
) -> None:
    key = await e2e.key(f"e2e-send-only-{uuid.uuid4().hex[:4]}")
    name = _name()
    status, body = await e2e.call(
        "POST", "/domains", key, json={"domain": name, "mode": "send_only"}
    )
    assert status == 201, body
    created = body["data"]
    public_id = created["id"]
    assert (created["mode"], created["verification_status"]) == ("send_only", "pending")
    assert {field: created[field] for field in SES_READ} == dict.fromkeys(SES_READ)  # unread
    assert await _ses_identity(e2e, name)
    assert await postmap_query(name) is None  # sending only: no row on the mail server

    # The customer places what sending needs: a send-only domain asks for no MX.
    records = await _records(e2e, key, public_id)
    assert records.mx == []
    e2e.dns.place(records)
    try:
        verified = await _verify(e2e, key, public_id)
        assert verified["status"] == "verified", verified
        assert all(verified["checks"].values()), verified["checks"]  # mx: true, not asked
        _assert_ses_read(verified)
        _, got = await e2e.call("GET", f"/domains/{public_id}", key)
        assert {f: got["data"][f] for f in SES_READ} == {f: verified[f] for f in SES_READ}
        assert await postmap_query(name) is None  # verified, and still not in the map

        # The upgrade, against the representation the customer last read.
        async with e2e.http.get(
            e2e.url(f"/domains/{public_id}"), headers={"Authorization": f"Bearer {key}"}
        ) as answer:
            etag = answer.headers["ETag"]
        async with e2e.http.patch(
            e2e.url(f"/domains/{public_id}"),
            json={"mode": "send_receive"},
            headers={"Authorization": f"Bearer {key}", "If-Match": etag},
        ) as answer:
            assert answer.status == 200, await answer.text()
            upgraded = (await answer.json())["data"]
        assert (upgraded["mode"], upgraded["verification_status"]) == ("send_receive", "pending")
        await eventually(lambda: _in_map(postmap_query, name))

        # Receiving needs the MX now: without it the domain does not verify...
        waiting = await _verify(e2e, key, public_id)
        assert waiting["status"] != "verified", waiting
        assert waiting["checks"]["mx"] is False
        # ...and with it, it does.
        records = await _records(e2e, key, public_id)
        assert records.mx, "a send-receive domain's records carry our MX"
        e2e.dns.place(records)
        again = await _verify(e2e, key, public_id)
        assert again["status"] == "verified", again
        assert all(again["checks"].values()), again["checks"]
        _assert_ses_read(again)
        assert await _in_map(postmap_query, name)

        await _delete(e2e, key, public_id, name, postmap_query)
    finally:
        e2e.dns.remove(records)


async def test_send_receive_is_in_the_mail_server_from_its_proof_to_its_delete(
    e2e: E2E, postmap_query: PostmapQuery
) -> None:
    key = await e2e.key(f"e2e-send-receive-{uuid.uuid4().hex[:4]}")
    name = _name()
    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    created = body["data"]
    public_id = created["id"]
    assert (created["mode"], created["verification_status"]) == ("send_receive", "pending")
    assert {field: created[field] for field in SES_READ} == dict.fromkeys(SES_READ)
    assert await _ses_identity(e2e, name)
    # Not live on the mail server before a verification has seen its ownership TXT.
    assert await postmap_query(name) is None

    records = await _records(e2e, key, public_id)
    e2e.dns.place(records)
    try:
        verified = await _verify(e2e, key, public_id)
        assert verified["status"] == "verified", verified
        assert all(verified["checks"].values()), verified["checks"]
        _assert_ses_read(verified)
        await eventually(lambda: _in_map(postmap_query, name))

        # Already sending and receiving: the upgrade changes nothing and answers the domain.
        status, body = await e2e.call(
            "PATCH", f"/domains/{public_id}", key, json={"mode": "send_receive"}
        )
        assert status == 200, body
        assert (body["data"]["mode"], body["data"]["verification_status"]) == (
            "send_receive",
            "verified",
        )
        assert await _in_map(postmap_query, name)

        await _delete(e2e, key, public_id, name, postmap_query)
    finally:
        e2e.dns.remove(records)
