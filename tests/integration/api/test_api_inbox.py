"""The api's inbox: an event RabbitMQ delivers twice changes a domain once.

Everything goes the way it does in production: the api runs with its consumers on a vhost of
its own, the events arrive over RabbitMQ as the provisioner and verifier publish them, and
the test reads the outcome over REST. The api takes one delivery at a time from each queue
(prefetch 1), so an event published after the duplicate is handled only once the duplicate
has been: when its effect shows, the duplicate's effect (if any) shows too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from litestar.testing import AsyncTestClient

from domainflow.api.app import create_app
from domainflow.api.teams.service import NewKey
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    DomainProvisioned,
    Event,
    RecordCheck,
    RecordKind,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit.envelope import encode
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, unique

pytestmark = pytest.mark.integration

Publish = Callable[[Event], Awaitable[None]]


@pytest.fixture(scope="module")
async def api(
    database_url: Callable[[str], Awaitable[str]], amqp_vhost: Callable[[str], str]
) -> AsyncIterator[ApiHarness]:
    """An api of this module's own: no other consumer shares its queues, one delivery at a time."""
    settings = api_settings(
        await database_url("api_inbox"), amqp_vhost("api-inbox"), broker={"prefetch": 1}
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


@pytest.fixture
async def publish(api: ApiHarness) -> AsyncIterator[Publish]:
    """Publish an event on the events exchange, as the other services' outbox relays do."""
    connection = await aio_pika.connect_robust(api.settings.broker.amqp_url)
    try:
        channel = await connection.channel()  # publisher confirms: published means routed
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)  # the api declared it

        async def send(event: Event) -> None:
            message = aio_pika.Message(
                encode(event),
                message_id=str(event.event_id),
                correlation_id=event.correlation_id,
                type=event.TYPE,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=event.TYPE)

        yield send
    finally:
        await connection.close()


def provisioned(team: NewKey, domain: dict[str, Any]) -> DomainProvisioned:
    return DomainProvisioned(
        correlation_id=unique("req_"),
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        region=domain["region"],
        dkim_tokens=[c * 32 for c in "abc"],
    )


def checked(
    team: NewKey, domain: dict[str, Any], outcome: VerificationOutcome
) -> VerificationCompleted:
    check = CheckOutcome.PASS if outcome is VerificationOutcome.PASSED else CheckOutcome.FAIL
    return VerificationCompleted(
        correlation_id=unique("req_"),
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        trigger=VerificationTrigger.SCHEDULED,
        outcome=outcome,
        ses_dkim_status=DkimStatus.SUCCESS,
        checks=[
            RecordCheck(record=kind, outcome=check, name=domain["domain"], expected="x")
            for kind in RecordKind
        ],
        checked_at=datetime.now(UTC),
    )


async def state_of(api: ApiHarness, key: str, domain_id: str) -> str:
    response = await api.client.get(f"{DOMAINS}/{domain_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    state: str = response.json()["data"]["state"]
    return state


async def until_state(api: ApiHarness, key: str, domain_id: str, state: str) -> None:
    # The bound only stops a broken build from hanging; the wait ends on the answer.
    for _ in range(600):
        if await state_of(api, key, domain_id) == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{domain_id} never became {state}")


async def test_a_failed_check_delivered_twice_counts_once(
    api: ApiHarness, publish: Publish
) -> None:
    team = await api.key()
    key = team.plaintext
    watched = await api.add_domain(key)
    marker = await api.add_domain(key)  # its answer, published last, shows the queue is done
    for domain in (watched, marker):
        await publish(provisioned(team, domain))
        await until_state(api, key, domain["id"], "pending")
    await publish(checked(team, watched, VerificationOutcome.PASSED))
    await until_state(api, key, watched["id"], "verified")

    # A verified domain's first failed check is a blip (back to pending); a second one in a
    # row fails it. The same failed check, delivered twice, is one failed check.
    failure = checked(team, watched, VerificationOutcome.FAILED)
    await publish(failure)
    await publish(failure)  # the broker's redelivery: same event, same id
    await publish(checked(team, marker, VerificationOutcome.PASSED))
    await until_state(api, key, marker["id"], "verified")

    assert await state_of(api, key, watched["id"]) == "pending"
    timeline = await api.client.get(f"{DOMAINS}/{watched['id']}/timeline", headers=auth(key))
    assert timeline.status_code == 200, timeline.text
    items = timeline.json()["data"]["items"]
    moves = [(i["status_before"], i["status_after"]) for i in items]
    assert moves.count(("verified", "pending")) == 1
    assert ("pending", "failed") not in moves
