"""A platform team subscribed as the README says hears a domain's whole life, and no more.

Its own read-only user and queue (`domainflow subscribers add`, the real command) on the
running stack; a domain created, verified, broken (a record removed in the DoH sandbox,
verified again) and deleted, and another whose provisioning fails at the mail server and
is rolled back. Every message is checked against the committed AsyncAPI document.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

from domainflow.contracts import DnsRecords
from domainflow.kit.policies import ManagementApi
from tests.e2e.conftest import E2E, eventually
from tests.plugins.asyncapi import wire_problems

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Heard:
    routing_key: str
    body: dict[str, Any]
    headers: dict[str, Any]


class Subscriber:
    """Consumes its own queue with its own login, keeping every message as it came."""

    def __init__(self, url: str, queue: str) -> None:
        self._url = url
        self._queue = queue
        self.heard: list[Heard] = []

    async def __aenter__(self) -> Subscriber:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(self._queue, passive=True)

        async def hear(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.heard.append(
                    Heard(
                        message.routing_key or "", json.loads(message.body), dict(message.headers)
                    )
                )

        await queue.consume(hear)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    def about(self, domain_id: str) -> list[Heard]:
        return [h for h in self.heard if h.body.get("domain_id") == domain_id]

    def deleted(self, domain_id: str) -> bool:
        return any(h.routing_key == "domain.deleted" for h in self.about(domain_id))


def _as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user)}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def subscriber(e2e: E2E) -> AsyncIterator[Subscriber]:
    admin = e2e.stack.env["DOMAINFLOW_AMQP_URL"]
    name = f"platform-{uuid.uuid4().hex[:6]}"  # users are per node, not per vhost
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "domainflow.cli", "subscribers", "add", name,
        env={**os.environ, "DOMAINFLOW_AMQP_URL": admin},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    login = json.loads(out)
    try:
        async with Subscriber(
            _as(admin, login["user"], login["password"]), login["queue"]
        ) as listening:
            yield listening
    finally:
        api = ManagementApi.for_amqp(admin)
        async with api.session() as session, session.delete(api.url("users", login["user"])):
            pass


@pytest.fixture
async def refusing_mail_server(e2e: E2E) -> AsyncIterator[str]:
    """A name the mail platform's database refuses to take: a real failure of the
    provisioning's mail-server step, for that name only."""
    name = f"mail.refused-{uuid.uuid4().hex[:8]}.example"
    function = f"refuse_{uuid.uuid4().hex[:8]}"
    db = await asyncpg.connect(e2e.stack.env["DOMAINFLOW_MAILSERVER_DATABASE_URL"])
    try:
        await db.execute(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF NEW.name = '{name}' THEN"
            "  RAISE EXCEPTION 'the mail platform refuses %', NEW.name; END IF;"
            " RETURN NEW; END $$;"
            f" CREATE TRIGGER {function} BEFORE INSERT ON virtual_domains"
            f" FOR EACH ROW EXECUTE FUNCTION {function}();"
        )
        yield name
    finally:
        await db.execute(
            f"DROP TRIGGER IF EXISTS {function} ON virtual_domains;"
            f" DROP FUNCTION IF EXISTS {function}();"
        )
        await db.close()


def _name() -> str:
    return f"mail.sub-{uuid.uuid4().hex[:8]}.example"


async def _verify(e2e: E2E, key: str, public_id: str) -> dict[str, Any] | None:
    """The verify answer; None when it is still running (503) or the team's budget is
    spent (429): the caller asks again."""
    status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
    if status in (429, 503):
        return None
    assert status == 200, body
    return dict(body["data"])


async def _state(e2e: E2E, key: str, public_id: str) -> str:
    _, body = await e2e.call("GET", f"/domains/{public_id}", key)
    return str(body["data"]["state"])


async def test_a_subscriber_hears_a_domains_whole_life_including_a_rollback(
    e2e: E2E, subscriber: Subscriber, refusing_mail_server: str
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:6]}@acme.example"
    key = await e2e.key(f"e2e-sub-{uuid.uuid4().hex[:4]}", (owner,))

    # Created, then verified before anything is placed: pending, every check failing.
    name = _name()
    status, body = await e2e.call(
        "POST", "/domains", key, json={"domain": name, "external_id": "acct-1"}
    )
    assert status == 201, body
    public_id = body["data"]["id"]
    answer = await eventually(lambda: _verify(e2e, key, public_id), timeout=60, interval=1.0)
    assert answer["status"] == "pending"
    assert answer["details"], answer
    assert all(not d["ok"] and isinstance(d["details"], dict) for d in answer["details"])
    assert isinstance(answer["warnings"], list)

    # Placed: verified (by this request, or by the schedule a moment before it).
    _, records = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    placed = DnsRecords.model_validate(records["data"])
    e2e.dns.place(placed)
    try:
        await eventually(
            lambda: _verify_reaches(e2e, key, public_id, "verified"), timeout=60, interval=1.0
        )
        # Broken: the DMARC record removed at the provider, verified again.
        e2e.dns.remove_name(placed.dmarc.name)
        await eventually(
            lambda: _verify_leaves(e2e, key, public_id, "verified"), timeout=60, interval=1.0
        )
    finally:
        e2e.dns.remove(placed)
    status, body = await e2e.call("DELETE", f"/domains/{public_id}", key)
    assert status == 200, body

    # Another whose provisioning fails at the mail server: rolled back, and told so.
    status, body = await e2e.call("POST", "/domains", key, json={"domain": refusing_mail_server})
    assert status in (202, 503), body  # 503 provisioning_failed once it is rolled back
    rolled_back = await eventually(lambda: _created_id(subscriber, refusing_mail_server))

    await eventually(lambda: subscriber.deleted(public_id), timeout=60)
    await eventually(lambda: subscriber.deleted(rolled_back), timeout=60)
    await asyncio.sleep(1.0)  # anything published after `deleted` would be a bug: let it come

    doc = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    for heard in subscriber.heard:
        assert heard.routing_key == heard.body["type"]
        assert wire_problems(doc, heard.routing_key, heard.body, heard.headers) == [], heard
        assert owner not in json.dumps(heard.body), heard.routing_key  # no personal data

    life = _current(subscriber.about(public_id))
    moves = _moves(life)
    assert moves[0] == ("provisioning", "pending")
    assert _in_order(moves, ("pending", "verified"), ("verified", "pending"))
    assert moves[-2][1] == "deleting"
    assert moves[-1] == ("deleting", "deleted")
    failing = [h.body for h in life if h.routing_key == "domain.checks_failed"]
    assert failing, "a pending domain whose checks fail is heard of without a status change"
    first = failing[0]
    assert first["status"] == "pending"
    assert {c["record"] for c in first["failing_checks"]} >= {"spf", "dmarc", "verification_txt"}
    assert all(c["reason"] and c["expected"] for c in first["failing_checks"])
    assert life[-1].body["reason_code"] == "deprovisioned"
    assert life[0].body["snapshot"]["external_id"] == "acct-1"

    gone = _current(subscriber.about(rolled_back))
    assert [h.routing_key for h in gone] == [
        "domain.created",
        "domain.status_changed",
        "domain.deleted",
    ]
    assert _moves(gone) == [("provisioning", "deleted")]
    assert {h.body["reason_code"] for h in gone[1:]} == {"provisioning_rolled_back"}


def _current(heard: list[Heard]) -> list[Heard]:
    """A domain's events as a subscriber reading version 2 keeps them, checked on the way:
    `created` first, `deleted` last, every public event numbered, the numbers rising
    strictly in the order they came, and each version-1 copy beside its version 2."""
    v1 = [h for h in heard if h.routing_key == "domain.status_changed" and h.body["version"] == 1]
    # `notification.sent` is the notifier's receipt of a mail, not a change of the domain.
    kept = [h for h in heard if h not in v1 and h.routing_key != "notification.sent"]
    numbers = [h.body["sequence"] for h in kept]
    assert numbers == sorted(set(numbers)), numbers  # strictly increasing, as they arrived
    assert numbers[0] == 1
    assert kept[0].routing_key == "domain.created"
    assert kept[-1].routing_key == "domain.deleted"
    changes = [h for h in kept if h.routing_key == "domain.status_changed"]
    assert all(h.body["version"] == 2 and h.body["snapshot"] for h in changes)
    assert all("owner_emails" not in h.body for h in changes)
    assert sorted(h.body["sequence"] for h in v1) == [h.body["sequence"] for h in changes]
    assert all(h.body["owner_emails"] == [] for h in v1)
    for h in kept:
        assert h.body["snapshot"]["id"] == h.body["domain_id"]
        assert h.headers["cloudEvents:subject"] == h.body["domain_id"]
    return kept


def _moves(heard: list[Heard]) -> list[tuple[str, str]]:
    moves = [
        (h.body["old_status"], h.body["new_status"])
        for h in heard
        if h.routing_key == "domain.status_changed"
    ]
    for (_, before), (after, _) in pairwise(moves):
        assert before == after, moves  # every change heard: none missing between two
    return moves


def _in_order(moves: list[tuple[str, str]], *wanted: tuple[str, str]) -> bool:
    rest = iter(moves)
    return all(any(m == w for m in rest) for w in wanted)


def _created_id(subscriber: Subscriber, name: str) -> str | None:
    for h in subscriber.heard:
        if h.routing_key == "domain.created" and h.body["domain"] == name:
            return str(h.body["domain_id"])
    return None


async def _verify_reaches(e2e: E2E, key: str, public_id: str, wanted: str) -> bool:
    if await _state(e2e, key, public_id) == wanted:
        return True
    answer = await _verify(e2e, key, public_id)
    return answer is not None and answer["status"] == wanted


async def _verify_leaves(e2e: E2E, key: str, public_id: str, left: str) -> bool:
    if await _state(e2e, key, public_id) != left:
        return True
    answer = await _verify(e2e, key, public_id)
    return answer is not None and answer["status"] != left
