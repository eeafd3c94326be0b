"""The notifier as it runs: a real process on RabbitMQ and PostgreSQL, sending through moto's SES.

The last test kills the notifier with SIGKILL after SES accepted a mail but before the
notifier recorded it. To stop it at exactly that point, the notifier talks to SES through a
small HTTP proxy in this test: the proxy forwards `SendEmail` to moto (so the mail really is
sent), then holds the answer back. The test waits for moto to have the mail, kills the
process, restarts it straight on moto, and checks that the owner is not mailed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from faststream.rabbit import RabbitBroker, RabbitQueue

from domainflow.contracts import (
    ChangeReason,
    CheckOutcome,
    DkimStatus,
    DomainStatus,
    NotificationRequested,
    RecordCheck,
    RecordKind,
)
from domainflow.kit.envelope import encode
from domainflow.kit.messaging import EVENTS, consumer_queue
from domainflow.sandbox.moto import MotoSandbox, SentEmail
from domainflow.sandbox.ports import listening_port

pytestmark = pytest.mark.integration

SENDER = "notifications@notifier-test.example.com"
REGION = "us-east-1"
DELIVERY_LIMIT = 5


# ---- moto --------------------------------------------------------------------------------


@pytest.fixture
def ses_endpoint(moto_server: MotoSandbox) -> str:
    """moto's URL, with the sender verified as SES requires (moto refuses unverified ones).

    Per test: another module's `fresh_moto` may have reset moto in between.
    """
    moto_server.verify_sender(SENDER, REGION)
    return moto_server.url


def sent_to(moto: MotoSandbox, recipients: set[str]) -> list[SentEmail]:
    """Every mail moto accepted for any of `recipients`."""
    return [m for m in moto.sent_emails() if recipients & set(m.destinations)]


def mail_text(mail: SentEmail) -> str:
    """What moto kept of a mail: subject and body (SendEmail keeps the HTML part only)."""
    return "\n".join(p for p in (mail.subject, mail.body, mail.text, mail.html) if p)


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = ""
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# ---- the notifier process ------------------------------------------------------------------


class NotifierProcess:
    """`domainflow.notifier.main.run()` in a child process, its logs in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = int(env["DOMAINFLOW_NOTIFIER_HEALTH_PORT"])

    def launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from domainflow.notifier.main import run; run()"],
                env=self.env,
                stdout=log,
                stderr=log,
            )

    async def start(self) -> None:
        """Launch the process and wait until it answers /readyz."""
        self.launch()

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"notifier exited:\n{self.log_path.read_text()}")
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(f"http://127.0.0.1:{self.health_port}/readyz") as r,
                ):
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, within=60, what="the notifier to be ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def logs(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
        return found


@pytest.fixture
async def notifier_env(
    amqp_url: str,
    database_url: Callable[[str], Awaitable[str]],
    ses_endpoint: str,
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOMAINFLOW_") and not k.startswith("AWS_ENDPOINT_URL")
    }
    env.update(
        {
            "DOMAINFLOW_AMQP_URL": amqp_url,
            "DOMAINFLOW_NOTIFIER_DATABASE_URL": await database_url("notifier_flow"),
            "DOMAINFLOW_NOTIFIER_HEALTH_PORT": str(listening_port()),
            "DOMAINFLOW_NOTIFY_FROM": SENDER,
            "DOMAINFLOW_NOTIFY_REGION": REGION,
            "DOMAINFLOW_NOTIFY_ON_VERIFIED": "true",
            "DOMAINFLOW_REDELIVERY_BACKOFF_MAX": "1",
            "DOMAINFLOW_DELIVERY_LIMIT": str(DELIVERY_LIMIT),
            "DOMAINFLOW_LOG_LEVEL": "INFO",
            "AWS_ENDPOINT_URL": ses_endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    return env


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], NotifierProcess]]:
    started: list[NotifierProcess] = []

    def make(env: dict[str, str]) -> NotifierProcess:
        process = NotifierProcess(dict(env), tmp_path / f"notifier-{len(started)}.log")
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[RabbitBroker]:
    rabbit = RabbitBroker(amqp_url, logger=None)
    await rabbit.connect()
    yield rabbit
    # Leave no message behind for the next test's notifier.
    with contextlib.suppress(Exception):
        queue = await rabbit.declare_queue(consumer_queue("notifier", NotificationRequested.TYPE))
        await queue.purge()
    await rabbit.stop()


async def publish(broker: RabbitBroker, event: NotificationRequested) -> None:
    await broker.publish(
        encode(event),
        exchange=EVENTS,
        routing_key=event.TYPE,
        persist=True,
        message_id=str(event.event_id),
        content_type="application/json",
    )


async def listen(broker: RabbitBroker, routing_key: str) -> Any:
    """A throwaway queue bound to the events exchange, for reading what the notifier published."""
    exchange = await broker.declare_exchange(EVENTS)
    queue = await broker.declare_queue(
        RabbitQueue(f"test.notifier.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
    )
    await queue.bind(exchange, routing_key=routing_key)
    return queue


async def drain(queue: Any) -> list[dict[str, Any]]:
    found = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        found.append(json.loads(message.body))
    return found


# ---- events ------------------------------------------------------------------------------


def transition(
    owners: list[str], status: DomainStatus = DomainStatus.FAILED, domain: str | None = None
) -> NotificationRequested:
    domain = domain or f"mail.acme-{uuid.uuid4().hex[:8]}.com"
    return NotificationRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:8]}",
        team_id="team_abc",
        domain_id=f"mdom_{uuid.uuid4().hex[:10]}",
        domain=domain,
        region=REGION,
        old_status=DomainStatus.PENDING,
        new_status=status,
        reason="verification failed on two consecutive cycles",
        transition_event_id=uuid.uuid4(),
        owner_emails=owners,
        ses_dkim_status=DkimStatus.SUCCESS
        if status is DomainStatus.VERIFIED
        else DkimStatus.TEMPORARY_FAILURE,
        checks=[]
        if status is DomainStatus.VERIFIED
        else [
            RecordCheck(
                record=RecordKind.SPF,
                outcome=CheckOutcome.FAIL,
                name=domain,
                expected="v=spf1 include:amazonses.com include:sendmux.ai ~all",
                found=["v=spf1 include:amazonses.com ~all", "v=spf1 include:_spf.google.com ~all"],
                reason="multiple_spf_records",
                message="Two SPF records were found; only one is allowed.",
            ),
            RecordCheck(
                record=RecordKind.DMARC,
                outcome=CheckOutcome.FAIL,
                name=f"_dmarc.{domain}",
                expected="v=DMARC1; p=quarantine",
                found=["v=DMARC1; p=none"],
                reason="dmarc_policy_too_weak",
                message="The DMARC policy p=none is weaker than p=quarantine.",
            ),
        ],
    )


def owners(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"owner{i}-{tag}@acme.example.com" for i in range(count)]


# ---- tests -------------------------------------------------------------------------------


async def test_a_failed_transition_mails_each_owner_once_even_when_redelivered(
    notifier_env: dict[str, str],
    processes: Callable[[dict[str, str]], NotifierProcess],
    broker: RabbitBroker,
    moto_server: MotoSandbox,
) -> None:
    notifier = processes(notifier_env)
    await notifier.start()
    results = await listen(broker, "notification.sent")
    team = owners(2)
    event = transition(team)

    await publish(broker, event)
    await eventually(counted(moto_server, set(team), 2), what="a mail to each of the two owners")
    mails = sent_to(moto_server, set(team))
    for owner in team:
        (mail,) = [m for m in mails if m.destinations == [owner]]
        assert mail.source == SENDER
        content = mail_text(mail)
        assert event.domain in content
        assert "SPF record" in content
        assert "v=spf1 include:_spf.google.com ~all" in content
        assert "DMARC record" in content
        assert "v=DMARC1; p=none" in content
        assert "DKIM (Amazon SES)" in content
        assert "<li>" in content  # the HTML part (moto keeps only it; the text part is unit-tested)

    # The same event again (a redelivery), then a sentinel behind it on the same queue: once
    # the sentinel's mail is out, the duplicate has been handled.
    await publish(broker, event)
    sentinel_owner = owners(1)
    await publish(broker, transition(sentinel_owner))
    await eventually(counted(moto_server, set(sentinel_owner), 1), what="the sentinel's mail")
    assert len(sent_to(moto_server, set(team))) == 2

    collected: list[dict[str, Any]] = []

    async def two_results() -> bool:
        collected.extend(await drain(results))
        return len([e for e in collected if e["version"] == 2]) >= 2

    await eventually(two_results, what="NotificationSent for both transitions")
    await asyncio.sleep(1.0)
    collected.extend(await drain(results))
    ours = [
        e
        for e in collected
        if e["transition_event_id"] == str(event.transition_event_id) and e["version"] == 2
    ]
    assert len(ours) == 1
    assert ours[0]["recipient_count"] == len(team)
    assert len(ours[0]["message_ids"]) == 2
    assert ours[0]["causation_id"] == str(event.event_id)


async def test_a_verified_transition_is_mailed_only_when_configured(
    notifier_env: dict[str, str],
    processes: Callable[[dict[str, str]], NotifierProcess],
    broker: RabbitBroker,
    moto_server: MotoSandbox,
) -> None:
    quiet = processes({**notifier_env, "DOMAINFLOW_NOTIFY_ON_VERIFIED": "false"})
    await quiet.start()
    team = owners(1)
    await publish(broker, transition(team, DomainStatus.VERIFIED))
    sentinel_owner = owners(1)
    await publish(broker, transition(sentinel_owner))
    await eventually(counted(moto_server, set(sentinel_owner), 1), what="the sentinel's mail")
    assert sent_to(moto_server, set(team)) == []
    quiet.stop()

    chatty = processes({**notifier_env, "DOMAINFLOW_NOTIFY_ON_VERIFIED": "true"})
    await chatty.start()
    event = transition(team, DomainStatus.VERIFIED)
    await publish(broker, event)
    await eventually(counted(moto_server, set(team), 1), what="the verified mail")
    (mail,) = sent_to(moto_server, set(team))
    content = mail_text(mail)
    assert f"{event.domain} is verified" in content
    assert "What failed" not in content


def expiry_notice(team: list[str], transition_id: uuid.UUID) -> NotificationRequested:
    """The api's notice of a registration ending in 12 days (its own event id each time)."""
    ends = datetime.now(UTC) + timedelta(days=12, hours=12)
    zone = f"acme-{uuid.uuid4().hex[:8]}.com"
    return transition(team, DomainStatus.VERIFIED, domain=f"mail.{zone}").model_copy(
        update={
            "old_status": DomainStatus.VERIFIED,
            "reason_code": ChangeReason.REGISTRATION_EXPIRING,
            "reason": f"The registration of {zone} expires on {ends.date().isoformat()}.",
            "registration_expires_at": ends,
            "transition_event_id": transition_id,
            "checks": [],
        }
    )


async def test_a_registration_expiring_is_mailed_once_per_date_even_when_asked_again(
    notifier_env: dict[str, str],
    processes: Callable[[dict[str, str]], NotifierProcess],
    broker: RabbitBroker,
    moto_server: MotoSandbox,
) -> None:
    # Verified mail off: an expiry notice about a verified domain is mailed all the same.
    notifier = processes({**notifier_env, "DOMAINFLOW_NOTIFY_ON_VERIFIED": "false"})
    await notifier.start()
    results = await listen(broker, "notification.sent")
    team = owners(2)
    same_date = uuid.uuid4()
    event = expiry_notice(team, same_date)
    await publish(broker, event)
    await eventually(counted(moto_server, set(team), 2), what="the expiry mail to both owners")
    ends = event.registration_expires_at
    assert ends is not None
    for mail in sent_to(moto_server, set(team)):
        content = mail_text(mail)
        assert f"the registration of {event.domain} expires on {ends.date()}" in content
        assert "12 days left" in content
        assert "Renew the domain at your registrar" in content
        assert "What failed" not in content

    # Asked again for the same date (the api after the watch blinked: a new event, the same
    # id) and redelivered: never a second mail. A sentinel behind them marks them handled.
    await publish(broker, expiry_notice(team, same_date))
    await publish(broker, event)
    sentinel_owner = owners(1)
    await publish(broker, transition(sentinel_owner))
    await eventually(counted(moto_server, set(sentinel_owner), 1), what="the sentinel's mail")
    assert len(sent_to(moto_server, set(team))) == 2

    # Announced once too, though asked about three times (twice as distinct events).
    collected: list[dict[str, Any]] = []

    async def sentinel_announced() -> bool:
        collected.extend(await drain(results))
        return any(e["domain"] != event.domain and e["version"] == 2 for e in collected)

    await eventually(sentinel_announced, what="NotificationSent for the sentinel")
    await asyncio.sleep(1.0)
    collected.extend(await drain(results))
    ours = [
        e for e in collected if e["transition_event_id"] == str(same_date) and e["version"] == 2
    ]
    assert len(ours) == 1
    assert ours[0]["recipient_count"] == 2


async def test_killed_after_sending_before_recording_never_mails_twice(
    notifier_env: dict[str, str],
    processes: Callable[[dict[str, str]], NotifierProcess],
    broker: RabbitBroker,
    moto_server: MotoSandbox,
) -> None:
    async with HoldingProxy(moto_server.url) as proxy:
        first = processes({**notifier_env, "AWS_ENDPOINT_URL": proxy.url})
        await first.start()
        team = owners(1)
        event = transition(team)
        await publish(broker, event)
        await asyncio.wait_for(proxy.sent_and_held.wait(), timeout=30)
        # moto has the mail; the notifier is waiting for SES's answer. Kill it there.
        assert len(sent_to(moto_server, set(team))) == 1
        first.kill()

    db = await asyncpg.connect(notifier_env["DOMAINFLOW_NOTIFIER_DATABASE_URL"])
    try:
        state = await db.fetchval(
            "SELECT state FROM notifications WHERE transition_event_id = $1",
            event.transition_event_id,
        )
        assert state == "sending"  # intent was committed before the call, outcome never was

        second = processes(notifier_env)  # straight to moto this time
        await second.start()

        async def settled() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT true FROM inbox WHERE consumer = 'notifier' AND event_id = $1",
                    event.event_id,
                )
            )

        await eventually(settled, what="the redelivered event to be handled")
        row = await db.fetchrow(
            "SELECT state, message_id, detail FROM notifications WHERE transition_event_id = $1",
            event.transition_event_id,
        )
    finally:
        await db.close()
    assert row is not None
    assert row["state"] == "unconfirmed"
    assert row["message_id"] is None
    assert len(sent_to(moto_server, set(team))) == 1
    unconfirmed = [e for e in second.logs() if e.get("event") == "notification.unconfirmed"]
    assert len(unconfirmed) == 1
    assert unconfirmed[0]["recipient"] == team[0]


def counted(
    moto: MotoSandbox, recipients: set[str], at_least: int
) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return len(sent_to(moto, recipients)) >= at_least

    return probe


class HoldingProxy:
    """Forwards every SES request to moto; a send's answer is held back, never delivered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.sent_and_held = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HoldingProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        port = listening_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method, f"{self.upstream}{request.rel_url}", headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            answer_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in {"content-length", "transfer-encoding", "connection"}
            }
        is_send = request.path.endswith("/outbound-emails") or (
            b"Action=SendEmail" in body or b"Action=SendRawEmail" in body
        )
        if is_send and status == 200:
            self.sent_and_held.set()
            await asyncio.Event().wait()  # until the client dies and the proxy shuts down
        return web.Response(body=payload, status=status, headers=answer_headers)
