"""A domain's whole life through all four services, as a customer and their owners see it."""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial
from typing import Any

import aio_pika
import aioboto3
import pytest

from domainflow.contracts.topology import EVENTS_EXCHANGE
from tests.e2e.conftest import E2E, REVERIFY_INTERVAL, eventually
from tests.plugins.mailserver import PostmapQuery

pytestmark = pytest.mark.e2e


def _name() -> str:
    return f"mail.e2e-{uuid.uuid4().hex[:8]}.example"


async def _ses_identity_exists(e2e: E2E, domain: str) -> bool:
    session = aioboto3.Session()
    async with session.client("ses", region_name="us-east-1", endpoint_url=e2e.moto.url) as ses:
        listed = await ses.list_identities(IdentityType="Domain")
    return domain in listed["Identities"]


async def test_two_api_replicas_both_answer_201_with_the_seed_shape(
    e2e: E2E, postmap_query: PostmapQuery
) -> None:
    key = await e2e.key("e2e-replicas")
    names = [_name(), _name()]
    answers = await asyncio.gather(
        *(
            e2e.call("POST", "/domains", key, replica=i, json={"domain": name})
            for i, name in enumerate(names)
        )
    )
    for (status, body), name in zip(answers, names, strict=True):
        assert status == 201, body
        data = body["data"]
        assert body["ok"] is True
        assert body["meta"]["request_id"].startswith("req_")
        assert data["id"].startswith("mdom_")
        assert data["domain"] == name
        assert data["verification_status"] == "pending"
        records = data["dns_records"]
        assert records["mx"][0]["priority"] == 10
        assert records["mx"][0]["target"]
        assert records["spf"]["name"] == name
        assert records["spf"]["value"].startswith("v=spf1 ")
        assert records["dmarc"]["name"] == f"_dmarc.{name}"
        assert records["verification"]["name"] == f"_sendmux.{name}"
        assert len(records["dkim"]) == 3
        for dkim in records["dkim"]:
            token = dkim["name"].split("._domainkey.")[0]
            assert dkim["name"] == f"{token}._domainkey.{name}"
            assert dkim["value"] == f"{token}.dkim.amazonses.com"
        assert await _ses_identity_exists(e2e, name)
        assert await postmap_query(name) is None  # not live before its ownership is proven


class OutsideSubscriber:
    """One of the platform's own services: its own queue on the events exchange, as the
    README tells such a service to do, collecting what it hears."""

    def __init__(self, amqp_url: str, *routing_keys: str) -> None:
        self._url = amqp_url
        self._keys = routing_keys
        self.heard: list[dict[str, Any]] = []

    async def __aenter__(self) -> OutsideSubscriber:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        for routing_key in self._keys:
            await queue.bind(exchange, routing_key=routing_key)

        async def hear(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.heard.append(json.loads(message.body))

        await queue.consume(hear)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    def about(self, domain_id: str) -> list[dict[str, Any]]:
        return [event for event in self.heard if event.get("domain_id") == domain_id]


async def test_verify_then_delete_then_add_again(e2e: E2E, postmap_query: PostmapQuery) -> None:
    async with OutsideSubscriber(
        e2e.stack.env["DOMAINFLOW_AMQP_URL"], "domain.status_changed", "domain.deleted"
    ) as platform:
        await _verify_then_delete_then_add_again(e2e, postmap_query, platform)


async def _verify_then_delete_then_add_again(
    e2e: E2E, postmap_query: PostmapQuery, platform: OutsideSubscriber
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:6]}@acme.example"
    key = await e2e.key(f"e2e-life-{uuid.uuid4().hex[:4]}", (owner,))
    name = _name()
    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    public_id = body["data"]["id"]

    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    assert status == 200, body
    assert body["data"]["status"] == "pending"
    assert body["data"]["checks"] == {
        "mx": False,
        "verification_txt": False,
        "spf": False,
        "dmarc": False,
        "mail_from_mx": False,
        "mail_from_spf": False,
    }

    status, records = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    assert status == 200
    from domainflow.contracts import DnsRecords

    placed = DnsRecords.model_validate(records["data"])
    e2e.dns.place(placed)
    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    assert status == 200, body
    assert body["data"]["status"] == "verified"
    assert body["data"]["ses_dkim_status"] == "success"
    assert all(body["data"]["checks"].values()), body["data"]["checks"]
    status, got = await e2e.call("GET", f"/domains/{public_id}", key)
    assert got["data"]["verified_at"]
    assert got["data"]["last_checked_at"]
    # Owners hear that it is verified (DOMAINFLOW_NOTIFY_ON_VERIFIED defaults to true).
    await eventually(lambda: e2e.emails_to(owner))

    status, body = await e2e.call("DELETE", f"/domains/{public_id}", key)
    assert status == 200, body
    assert body["data"]["deleted"] is True
    assert "yours to remove" in body["data"]["dns_cleanup"]
    assert not await _ses_identity_exists(e2e, name)
    assert await postmap_query(name) is None
    status, _ = await e2e.call("GET", f"/domains/{public_id}", key)
    assert status == 404

    # The platform's own services heard every step, in the envelope AsyncAPI describes.
    async def heard_the_deletion() -> bool:
        return any(e["type"] == "domain.deleted" for e in platform.about(public_id))

    await eventually(heard_the_deletion)
    heard = platform.about(public_id)
    moves = sorted(
        (e["occurred_at"], e["old_status"], e["new_status"])
        for e in heard
        if e["type"] == "domain.status_changed" and e["version"] == 2  # v1 beside it, for now
    )
    assert [(old, new) for _, old, new in moves] == [
        ("provisioning", "pending"),
        ("pending", "verified"),
        ("verified", "deleting"),
        ("deleting", "deleted"),
    ]
    deleted = [e for e in heard if e["type"] == "domain.deleted"]
    assert len(deleted) == 1
    assert deleted[0]["domain"] == name
    assert deleted[0]["version"] == 1
    assert deleted[0]["correlation_id"] == body["meta"]["request_id"]  # the DELETE's request
    assert {"event_id", "occurred_at", "causation_id", "team_id"} <= deleted[0].keys()

    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    assert body["data"]["id"] != public_id
    assert body["data"]["verification_status"] == "pending"
    e2e.dns.remove(placed)


async def test_a_pending_domain_is_accepted_by_the_mail_server_only_once_its_txt_is_seen(
    e2e: E2E, postmap_query: PostmapQuery
) -> None:
    key = await e2e.key(f"e2e-proof-{uuid.uuid4().hex[:4]}")
    name = _name()
    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    public_id = body["data"]["id"]
    from domainflow.contracts import DnsRecords

    records = DnsRecords.model_validate(body["data"]["dns_records"])
    assert len(records.dkim) == 3  # the SES identity is there from the first answer

    # Every record but the ownership TXT: verified it is not, and Postfix still refuses it.
    others = records.model_copy(
        update={"verification": records.verification.model_copy(update={"value": "not-ours"})}
    )
    e2e.dns.place(others)
    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    assert status == 200, body
    assert body["data"]["checks"]["verification_txt"] is False
    assert body["data"]["checks"]["mx"] is True
    await asyncio.sleep(REVERIFY_INTERVAL * 2)  # scheduled probes ran too, and saw no TXT
    assert await postmap_query(name) is None

    # The TXT alone, with the other records gone: its first sight puts the domain live.
    e2e.dns.remove(records)
    e2e.dns.set_records(records.verification.name, "TXT", [records.verification.value])
    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    assert status == 200, body
    assert body["data"]["status"] == "pending"
    assert body["data"]["checks"]["verification_txt"] is True
    assert await eventually(lambda: postmap_query(name), timeout=60) == name
    _, timeline = await e2e.call("GET", f"/domains/{public_id}/timeline", key)
    assert "ownership_proven" in [line["happening"] for line in timeline["data"]["items"]]

    # And out again with the domain.
    status, body = await e2e.call("DELETE", f"/domains/{public_id}", key)
    assert status == 200, body
    await eventually(lambda: _gone_from_map(postmap_query, name), timeout=60)
    e2e.dns.remove(records)


async def _gone_from_map(postmap_query: PostmapQuery, name: str) -> bool:
    return await postmap_query(name) is None


async def _status(e2e: E2E, key: str, public_id: str) -> str:
    _, body = await e2e.call("GET", f"/domains/{public_id}", key)
    return str(body["data"]["verification_status"])


async def test_reverification_blips_silently_and_a_lasting_failure_emails_each_owner_once(
    e2e: E2E,
) -> None:
    owners = (f"a-{uuid.uuid4().hex[:6]}@acme.example", f"b-{uuid.uuid4().hex[:6]}@acme.example")
    key = await e2e.key(f"e2e-cycle-{uuid.uuid4().hex[:4]}", owners)
    name = _name()
    _, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    public_id = body["data"]["id"]
    _, records = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    from domainflow.contracts import DnsRecords

    placed = DnsRecords.model_validate(records["data"])
    e2e.dns.place(placed)
    # Pending flips to verified as soon as DNS catches up, with no manual verify.
    await eventually(lambda: _status_is(e2e, key, public_id, "verified"), timeout=20)
    # Owners hear of the first verification; wait for those mails before counting.
    await eventually(lambda: all(len(e2e.emails_to(o)) == 1 for o in owners))
    baseline = {o: len(e2e.emails_to(o)) for o in owners}

    # A blip: the SPF record vanishes for one cycle -> pending, nobody emailed.
    e2e.dns.remove_name(placed.spf.name)
    await eventually(lambda: _status_is(e2e, key, public_id, "pending"), timeout=20)
    e2e.dns.place(placed)
    await eventually(lambda: _status_is(e2e, key, public_id, "verified"), timeout=20)
    await asyncio.sleep(REVERIFY_INTERVAL)
    assert {o: len(e2e.emails_to(o)) for o in owners} == baseline

    # The resolver down for a whole cycle changes nothing.
    e2e.dns.stop_resolver()
    try:
        await asyncio.sleep(REVERIFY_INTERVAL * 2)
        assert await _status(e2e, key, public_id) == "verified"
    finally:
        e2e.dns.start_resolver()

    # A failure that persists to the next cycle -> failed, one email per owner.
    e2e.dns.remove_name(placed.spf.name)
    await eventually(lambda: _status_is(e2e, key, public_id, "failed"), timeout=30)
    for owner in owners:
        await eventually(partial(_mailed, e2e, owner, baseline[owner] + 1))
    await asyncio.sleep(REVERIFY_INTERVAL * 2)  # failed domains are not re-checked or re-mailed
    assert {o: len(e2e.emails_to(o)) for o in owners} == {o: baseline[o] + 1 for o in owners}
    mail = e2e.emails_to(owners[0])[-1]
    assert name in (mail.subject + (mail.body or ""))

    # The timeline tells the whole story, oldest last line first here.
    _, timeline = await e2e.call("GET", f"/domains/{public_id}/timeline?limit=100", key)
    story = list(reversed(timeline["data"]["items"]))
    moves = [i["status_after"] for i in story if i["status_before"] != i["status_after"]]
    assert moves == [
        "provisioning",
        "pending",
        "verified",
        "pending",
        "verified",
        "pending",
        "failed",
    ]
    assert any(i["outcome"] == "inconclusive" for i in story)  # the resolver outage
    # Removing the name at the apex took the MX record with the SPF one.
    assert sorted(c["record"] for c in story[-1]["failing_checks"]) == ["mx", "spf"]
    e2e.dns.remove(placed)


def _mailed(e2e: E2E, owner: str, count: int) -> bool:
    return len(e2e.emails_to(owner)) == count


async def _status_is(e2e: E2E, key: str, public_id: str, wanted: str) -> bool:
    return await _status(e2e, key, public_id) == wanted
