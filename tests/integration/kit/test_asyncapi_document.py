"""The AsyncAPI document is valid to the official parser and true to the wire.

The parser is npm's `@asyncapi/parser` (pinned in tools/asyncapi-check, installed there on
first use); the wire is the real outbox relay publishing one event of every type to real
RabbitMQ, each captured from the exchange and checked against the document, headers and
properties included.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from domainflow.contracts import EVENT_TYPES
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import outbox
from domainflow.kit.asyncapi import document, examples
from domainflow.kit.database import Database
from domainflow.kit.messaging import broker_for
from domainflow.kit.outbox import OutboxRelay
from domainflow.kit.runtime import kit_migrations
from tests.plugins.asyncapi import message_key as _message_key
from tests.plugins.asyncapi import problems as _problems

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHECKER = ROOT / "tools" / "asyncapi-check"


@pytest.fixture(scope="module")
def parser_installed() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js 20 and npm are needed to run the official AsyncAPI parser")
    if not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=CHECKER,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return CHECKER


def test_the_document_passes_the_official_parser_without_errors_or_warnings(
    parser_installed: Path, tmp_path: Path
) -> None:
    committed = ROOT / "docs" / "asyncapi.json"
    assert committed.read_text(encoding="utf-8").strip() == document().strip(), (
        "run `make asyncapi` and commit the result"
    )
    result = subprocess.run(
        ["node", "validate.mjs", str(committed)],
        cwd=parser_installed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # And it can fail: a persistent flag the AMQP binding does not know is an error.
    broken = json.loads(committed.read_text(encoding="utf-8"))
    [publish] = [o for o in broken["operations"].values() if o["action"] == "send"][:1]
    publish["bindings"]["amqp"]["deliveryMode"] = 3
    spoiled = tmp_path / "spoiled.json"
    spoiled.write_text(json.dumps(broken), encoding="utf-8")
    refused = subprocess.run(
        ["node", "validate.mjs", str(spoiled)],
        cwd=parser_installed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert "deliveryMode" in refused.stdout


def test_every_message_has_a_name_a_summary_and_an_example_that_validates() -> None:
    doc = json.loads(document())
    for event_type in EVENT_TYPES:
        key = _message_key(doc, event_type)
        message = doc["components"]["messages"][key]
        assert message["summary"]
        [example] = message["examples"]
        pointer = f"/components/messages/{key}"
        assert _problems(doc, pointer + "/payload", example["payload"]) == []
        assert _problems(doc, pointer + "/headers", example["headers"]) == []
    envelope = {"event_id", "type", "version", "occurred_at", "correlation_id", "team_id"}
    for name in (cls.__name__ for cls in EVENT_TYPES.values()):
        assert envelope <= set(doc["components"]["schemas"][name]["required"]), name


async def test_every_event_the_relay_publishes_matches_the_document(
    amqp_vhost: Callable[[str], str], database_url: Callable[[str], Awaitable[str]]
) -> None:
    doc = json.loads(document())
    url = amqp_vhost("asyncapi-wire")
    db = await Database.prepare(await database_url("asyncapi_wire"), kit_migrations(), size=2)
    broker: RabbitBroker = broker_for(url, prefetch=1)
    await broker.connect()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(exchange, routing_key="#")
        # One of each type, each with an id of its own (the examples share one).
        sent = {t: e.model_copy(update={"event_id": uuid.uuid4()}) for t, e in examples().items()}
        async with db.transaction() as conn:
            await outbox.add(conn, *sent.values())
        await OutboxRelay(db, broker, service="api").drain()
        captured: list[aio_pika.abc.AbstractIncomingMessage] = []
        for _ in range(300):
            message = await tap.get(fail=False)
            if message is not None:
                captured.append(message)
                await message.ack()
            elif len(captured) == len(sent):
                break
            else:
                await asyncio.sleep(0.1)
        assert sorted(m.routing_key or "" for m in captured) == sorted(sent)
        for message in captured:
            key = _message_key(doc, message.routing_key or "")
            pointer = f"/components/messages/{key}"
            body = json.loads(message.body)
            headers = dict(message.headers or {})
            assert _problems(doc, pointer + "/payload", body) == [], message.routing_key
            assert _problems(doc, pointer + "/headers", headers) == [], message.routing_key
            # The properties the operation and message bindings promise.
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.correlation_id == body["correlation_id"]
            assert message.content_type == doc["components"]["messages"][key]["contentType"]
            assert message.type == message.routing_key == body["type"]
    finally:
        await connection.close()
        await broker.stop()
        await db.close()
