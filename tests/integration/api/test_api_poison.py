"""A poison event ends in its DLQ with its reason, at once, and its domain is cleared by
`domains release`.

Real RabbitMQ (a vhost of this module's own) and PostgreSQL: the api runs in process as in
the other api tests, and the provisioner's consumers run on the same vhost with their own
database, over scripted stand-ins for the mail server and SES (what they are asked is the
point here, not what they do).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from domainflow.api.app import create_app
from domainflow.api.domains import operators
from domainflow.api.teams.service import NewKey
from domainflow.contracts import DomainRequested
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import dead_letters
from domainflow.kit.database import Database
from domainflow.kit.envelope import encode
from domainflow.kit.messaging import declare_topology
from domainflow.kit.policies import QueueLimits
from domainflow.kit.runtime import kit_migrations
from domainflow.provisioner.adapters.repository import migrations
from domainflow.provisioner.entrypoints import build_router
from domainflow.provisioner.handlers import SagaRunner
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, unique
from tests.integration.provisioner.test_saga_runner import Scripted, settings

pytestmark = pytest.mark.integration

QUEUE = "provisioner.domain-requested"


@dataclass
class Stack:
    api: ApiHarness
    provisioner_db: Database
    world: Scripted
    url: str

    async def publish(self, body: bytes, routing_key: str = "domain.requested") -> None:
        """As an older release's relay, or a bug, would put it on the exchange."""
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            await exchange.publish(
                aio_pika.Message(body, content_type="application/json"), routing_key=routing_key
            )

    async def sagas(self) -> list[tuple[str, str, str]]:
        async with self.provisioner_db.transaction() as conn:
            rows = await conn.fetch("SELECT domain_id, kind, state FROM sagas ORDER BY id")
        return [(r["domain_id"], r["kind"], r["state"]) for r in rows]


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def stack(
    database_url: Callable[[str], Awaitable[str]], amqp_vhost: Callable[[str], str]
) -> AsyncIterator[Stack]:
    url = amqp_vhost("poison")
    db = await Database.prepare(
        await database_url("poison_provisioner"), [*kit_migrations(), *migrations()], size=4
    )
    world = Scripted()
    runner = SagaRunner(db, world, world, settings())
    router, queues = build_router(runner, settings())
    broker = RabbitBroker(url, logger=None)
    await broker.connect()
    await declare_topology(broker, queues, amqp_url=url, limits=QueueLimits(delivery_limit=5))
    broker.include_router(router)
    await broker.start()
    dispatch = asyncio.create_task(runner.dispatch_loop())
    try:
        app_settings = api_settings(await database_url("poison_api"), url)
        async with AsyncTestClient(create_app(app_settings)) as client:
            yield Stack(ApiHarness(client, app_settings), db, world, url)
    finally:
        dispatch.cancel()
        await asyncio.gather(dispatch, return_exceptions=True)
        await broker.stop()
        await db.close()


def _poisoned(domain: dict[str, Any], team: NewKey) -> bytes:
    """The request for a domain the api holds, as a release that let a newline into the
    region wrote it (issue 11: aiohttp refuses it in SES's headers, every time)."""
    event = DomainRequested(
        correlation_id="req_old_release",
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        region="us-east-1\n",
    )
    return encode(event)


async def test_a_poison_event_is_parked_at_once_with_its_reason_and_release_clears_its_domain(
    stack: Stack,
) -> None:
    api = stack.api
    team, other = await api.key(), await api.key()
    name = f"{unique('poison')}.example.com"
    with capture_logs() as logged:
        created = await api.client.post(
            DOMAINS, json={"domain": name}, headers=auth(team.plaintext)
        )
        assert created.status_code in (201, 202), created.text
        domain = created.json()["data"]
        # The api's own request is well formed: it runs (its answer is never relayed here).
        await _until(
            lambda: _has_saga(stack, domain["id"], "provision", "completed"), "the provisioning"
        )
        # An unreadable body, and a readable one that no saga could ever carry out.
        await stack.publish(b"\x00not json at all")
        await stack.publish(_poisoned(domain, team))

        async def both_parked() -> bool:
            return len(await dead_letters.show(stack.url, QUEUE)) == 2

        await _until(both_parked, "both to be parked")
    parked = {p.reason: p for p in await dead_letters.show(stack.url, QUEUE)}
    assert set(parked) == {"not_json", "unprocessable"}
    poison = parked["unprocessable"]
    assert poison.detail is not None
    assert "not an AWS region" in poison.detail
    assert domain["id"] in poison.detail
    assert poison.event_id is None or poison.body["domain_id"] == domain["id"]
    # Parked by the consumer on first sight: no delivery failed, nothing recorded for it.
    assert not [e for e in logged if e["event"] == "event.handler_failed"]
    assert [e["reason"] for e in logged if e["event"] == "event.poison"] == ["unprocessable"]
    assert await stack.sagas() == [(domain["id"], "provision", "completed")]
    assert stack.world.calls == ["add_domain", "create_identity", "set_mail_from"]

    # The CLI's `dead-letters show` prints the reason and the sentence.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "domainflow.cli", "dead-letters", "show", QUEUE,
        env={**os.environ, "DOMAINFLOW_AMQP_URL": stack.url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    shown = [json.loads(line) for line in out.decode().splitlines()]
    assert {s["reason"] for s in shown} == {"not_json", "unprocessable"}

    # Nothing answers for the domain: it stays provisioning until someone acts.
    assert await api.status_of(domain["id"]) == "provisioning"
    # An operator releases the name: it is free at once, and the provisioner removes what
    # the domain holds (the release's deletion is well formed).
    await api.call(operators.release, api.uow, api.settings, name, reason="poison, ticket 9")
    assert await api.status_of(domain["id"]) == "deleted"
    await _until(lambda: _has_saga(stack, domain["id"], "deprovision", "completed"), "the removal")
    assert stack.world.calls[-2:] == ["delete_identity", "remove_domain"]
    again = await api.client.post(DOMAINS, json={"domain": name}, headers=auth(other.plaintext))
    assert again.status_code in (201, 202), again.text


async def _has_saga(stack: Stack, domain_id: str, kind: str, state: str) -> bool:
    return (domain_id, kind, state) in await stack.sagas()
