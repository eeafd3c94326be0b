"""The provisioner running for real: RabbitMQ, PostgreSQL, moto's SES, the Postfix map.

Each test runs the service as a subprocess (so it can be killed with SIGKILL mid-saga),
publishes requests to the events exchange of the session's RabbitMQ vhost, and reads the
answers from a queue of its own bound to the same exchange. What is left on the mail
server is judged by its table and Postfix's own `postmap -q`, what is left on SES by moto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aioboto3
import asyncpg
import pytest
from aiohttp import web

from domainflow.contracts import (
    DeletionRequested,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainRequested,
    Event,
    ProvisioningRolledBack,
    ReceivingRequested,
)
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit.envelope import decode, encode
from domainflow.provisioner.adapters.mailserver import MailServer
from domainflow.sandbox.ports import listening_port
from tests.plugins.ses import MotoAccounts

pytestmark = pytest.mark.integration

Publish = Callable[[Event], Awaitable[None]]
PostmapQuery = Callable[[str], Awaitable[str | None]]

ROOT = Path(__file__).resolve().parents[3]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
REGION = "us-east-1"
STEP_ATTEMPTS = 3


# --- reading events back ---------------------------------------------------------------------


@dataclass
class EventTap:
    """A queue of the test's own on the events exchange: every event the service publishes."""

    events: list[Event] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, body: bytes) -> None:
        self.events.append(decode(body))
        self.arrived.set()

    def answers(self, cause: Event) -> list[Event]:
        return [e for e in self.events if e.causation_id == cause.event_id]

    async def answer(self, cause: Event, within: float = 45.0) -> Event:
        deadline = time.monotonic() + within
        while not (found := self.answers(cause)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer to {cause.TYPE} {cause.event_id} in {within}s")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=min(remaining, 0.5))
        return found[0]


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[tuple[EventTap, Publish]]:
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    # Requests left by an earlier test (a killed replica's unacked ones) belong to no one now.
    for name in ("provisioner.domain-requested", "provisioner.domain-deletion-requested"):
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            purge_channel = await connection.channel()
            queue = await purge_channel.get_queue(name, ensure=True)
            await queue.purge()
    tap = EventTap()
    queue = await channel.declare_queue(f"test.saga.{uuid.uuid4().hex[:8]}", exclusive=True)
    await queue.bind(exchange, routing_key="domain.#")

    async def consume(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            tap.on_message(message.body)

    await queue.consume(consume)

    async def publish(event: Event) -> None:
        await exchange.publish(
            aio_pika.Message(
                encode(event),
                content_type="application/json",
                message_id=str(event.event_id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=event.TYPE,
        )

    yield tap, publish
    await connection.close()


# --- outside systems that misbehave -------------------------------------------------------------


@pytest.fixture
async def failing_ses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, list[str]]]:
    """An SES endpoint that answers every request with one error; yields (url, requests).

    The error is `(status, code)` from the test's parameter; by default a refusal that may
    pass but is no throttling (which the SES budget waits out instead of failing on).
    """
    status, code = getattr(request, "param", (400, "LimitExceededException"))
    seen: list[str] = []

    async def fail(req: web.Request) -> web.Response:
        seen.append(f"{req.method} {req.path}")
        return web.json_response(
            {"__type": code, "message": "SES is having a bad day"},
            status=status,
            headers={"x-amzn-ErrorType": code},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = listening_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
def silent_ses() -> Iterator[str]:
    """An SES endpoint that accepts connections and never answers (a call stuck mid-flight)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


# --- the service as a process ---------------------------------------------------------------


@dataclass
class Stack:
    amqp_url: str
    database_url: str
    mailserver_url: str
    moto_url: str
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, ses_url: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DOMAINFLOW_AMQP_URL": self.amqp_url,
            "DOMAINFLOW_PROVISIONER_DATABASE_URL": self.database_url,
            "DOMAINFLOW_MAILSERVER_DATABASE_URL": self.mailserver_url,
            "DOMAINFLOW_PROVISIONER_HEALTH_PORT": str(listening_port()),
            "DOMAINFLOW_PROVISIONER_STEP_ATTEMPTS": str(STEP_ATTEMPTS),
            "DOMAINFLOW_PROVISIONER_STEP_BACKOFF": "0.1",
            "DOMAINFLOW_PROVISIONER_STEP_BACKOFF_MAX": "0.5",
            "DOMAINFLOW_PROVISIONER_STEP_TIMEOUT": "10",
            "DOMAINFLOW_PROVISIONER_LEASE_SECONDS": "2",
            "DOMAINFLOW_PROVISIONER_RECOVERY_INTERVAL": "0.5",
            "DOMAINFLOW_LOG_FORMAT": "console",
            "AWS_ENDPOINT_URL": ses_url or self.moto_url,
            "AWS_ENDPOINT_URL_SESV2": ses_url or self.moto_url,
            "AWS_MAX_ATTEMPTS": "1",  # botocore's own retries would hide the saga's
            **extra,
        }
        log = self.log_dir / f"provisioner-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [PYTHON, "-c", "from domainflow.provisioner.main import run; run()"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.procs.append(proc)
        return proc

    async def ready(self, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
        """Wait until the replica consumes (its queues exist and its recovery sweep runs)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"provisioner exited {proc.returncode}:\n{self.tail()}")
            if "service.started" in self.logs[-1].read_text(errors="replace"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"provisioner did not start:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return "\n".join(log.read_text(errors="replace")[-chars:] for log in self.logs)

    async def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)

    async def stop_all(self) -> None:
        """SIGTERM every replica; waits off the event loop, which serves the test's fakes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


@pytest.fixture
async def stack(
    amqp_url: str,
    database_url: Callable[[str], Awaitable[str]],
    mailserver_database_url: str,
    moto_server: Any,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    s = Stack(
        amqp_url=amqp_url,
        database_url=await database_url("provisioner_saga"),
        mailserver_url=mailserver_database_url,
        moto_url=moto_server.url,
        log_dir=tmp_path,
    )
    yield s
    await s.stop_all()


# --- looking at the outcome ---------------------------------------------------------------


async def saga_rows(stack: Stack, domain_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT * FROM sagas WHERE domain_id = $1 ORDER BY id",
                domain_id,
            )
        )
    finally:
        await conn.close()


async def steps_of(stack: Stack, domain_id: str, kind: str) -> dict[str, str]:
    for row in await saga_rows(stack, domain_id):
        if row["kind"] == kind:
            steps = row["steps"] if isinstance(row["steps"], list) else json.loads(row["steps"])
            return {s["step"]: s["status"] for s in steps}
    return {}


async def wait_for_steps(
    stack: Stack, domain_id: str, kind: str, wanted: dict[str, str], within: float = 30.0
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        steps = await steps_of(stack, domain_id, kind)
        if all(steps.get(k) == v for k, v in wanted.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"saga never reached {wanted}: {steps}\n{stack.tail()}")


async def identity_exists(stack: Stack, domain: str) -> bool:
    """Ask moto's SES directly (not through the code under test)."""
    session = aioboto3.Session()
    async with session.client("sesv2", region_name=REGION, endpoint_url=stack.moto_url) as ses:
        try:
            await ses.get_email_identity(EmailIdentity=domain)
        except ses.exceptions.NotFoundException:
            return False
    return True


async def wait_for_state(
    stack: Stack, domain_id: str, state: str, within: float = 30.0
) -> asyncpg.Record:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for row in await saga_rows(stack, domain_id):
            if row["state"] == state:
                return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"saga never became {state}\n{stack.tail()}")


def requested(domain: str, **kw: Any) -> DomainRequested:
    return DomainRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:8]}",
        team_id="team_saga",
        domain_id=f"mdom_{uuid.uuid4().hex[:12]}",
        domain=domain,
        region=REGION,
        **kw,
    )


def deletion(of: DomainRequested) -> DeletionRequested:
    return DeletionRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:8]}",
        team_id=of.team_id,
        domain_id=of.domain_id,
        domain=of.domain,
        region=of.region,
    )


def unique_domain(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.saga-test.example"


# --- the scenarios ----------------------------------------------------------------------------


async def test_a_request_provisions_the_domain_on_both_systems(
    stack: Stack, bus: tuple[EventTap, Publish], mail_server: MailServer
) -> None:
    tap, publish = bus
    await stack.ready(stack.start())
    event = requested(unique_domain("ok"), mail_from_domain=None)
    await publish(event)
    answer = await tap.answer(event)
    assert isinstance(answer, DomainProvisioned), answer
    assert len(answer.dkim_tokens) == 3
    assert answer.correlation_id == event.correlation_id
    assert answer.team_id == event.team_id
    assert await identity_exists(stack, event.domain)
    assert await mail_server.has_domain(event.domain)


async def test_a_provisioned_domain_is_held_and_goes_live_only_when_receiving_is_asked(
    stack: Stack, bus: tuple[EventTap, Publish], postmap_query: PostmapQuery
) -> None:
    """Provisioning holds the name on the mail server without Postfix accepting mail for it;
    the receive request the api sends once ownership is proven makes it live."""
    tap, publish = bus
    await stack.ready(stack.start())
    event = requested(unique_domain("live"), mail_from_domain=None)
    await publish(event)
    assert isinstance(await tap.answer(event), DomainProvisioned)
    assert await postmap_query(event.domain) is None

    await publish(receiving(event))
    await wait_until(lambda: postmap_query(event.domain), equals=event.domain)
    assert await steps_of(stack, event.domain_id, "receive") == {"mailserver": "done"}

    gone = deletion(event)
    await publish(gone)
    assert isinstance(await tap.answer(gone), DomainDeprovisioned)
    assert await postmap_query(event.domain) is None


async def wait_until(
    read: Callable[[], Awaitable[object]],
    *,
    equals: object,
    timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await read()) != equals:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {got!r}, not {equals!r}, after {timeout}s")
        await asyncio.sleep(0.2)


def receiving(of: DomainRequested) -> ReceivingRequested:
    return ReceivingRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:8]}",
        team_id=of.team_id,
        domain_id=of.domain_id,
        domain=of.domain,
        region=of.region,
    )


async def test_ses_failing_after_the_mail_server_rolls_everything_back(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    mail_server: MailServer,
    failing_ses: tuple[str, list[str]],
) -> None:
    tap, publish = bus
    url, seen = failing_ses
    broken = stack.start(ses_url=url)
    await stack.ready(broken)
    domain = unique_domain("rollback")
    event = requested(domain)
    await publish(event)
    answer = await tap.answer(event)
    assert isinstance(answer, ProvisioningRolledBack), answer
    assert answer.failed_step == "ses_identity"
    assert "LimitExceededException" in answer.reason
    assert len(seen) >= STEP_ATTEMPTS  # the saga tried the bounded number of times
    (row,) = await saga_rows(stack, event.domain_id)
    assert row["state"] == "rolled_back"
    assert not await mail_server.has_domain(domain)  # the mail-server step was undone
    assert not await identity_exists(stack, domain)

    # Once SES is healthy again, a fresh request for the same domain starts clean.
    await stack.stop_all()
    await stack.ready(stack.start())
    retry = requested(domain)
    await publish(retry)
    answer = await tap.answer(retry)
    assert isinstance(answer, DomainProvisioned), answer
    assert await mail_server.has_domain(domain)
    assert await identity_exists(stack, domain)


@pytest.mark.parametrize("failing_ses", [(500, "InternalFailure")], indirect=True)
async def test_an_ses_error_in_doubt_holds_the_rollback_until_ses_answers(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    mail_server: MailServer,
    failing_ses: tuple[str, list[str]],
) -> None:
    """A 500 may follow a request SES carried out, so the identity must be deleted before
    the rollback is reported; while SES keeps failing, the saga keeps compensating."""
    tap, publish = bus
    url, _ = failing_ses
    await stack.ready(stack.start(ses_url=url))
    event = requested(unique_domain("indoubt"))
    await publish(event)
    row = await wait_for_state(stack, event.domain_id, "compensating")
    await asyncio.sleep(1.0)  # several undo tries later, still stuck on SES
    (row,) = await saga_rows(stack, event.domain_id)
    assert row["state"] == "compensating"
    assert await steps_of(stack, event.domain_id, "provision") == {
        "mailserver": "done",  # undone only after SES, in reverse order
        "ses_identity": "started",
    }
    assert tap.answers(event) == []
    assert await mail_server.has_domain(event.domain)

    await stack.stop_all()
    await stack.ready(stack.start())  # SES is back
    answer = await tap.answer(event)
    assert isinstance(answer, ProvisioningRolledBack), answer
    assert "InternalFailure" in answer.reason
    assert not await mail_server.has_domain(event.domain)
    assert not await identity_exists(stack, event.domain)


async def test_a_replica_killed_between_the_steps_converges(
    stack: Stack, bus: tuple[EventTap, Publish], mail_server: MailServer, silent_ses: str
) -> None:
    """Killed with the mail server done and the SES call in flight: the next replica
    redoes the `started` SES step (creating an identity is idempotent) and the saga
    completes: provisioned, not rolled back, since nothing actually failed."""
    tap, publish = bus
    doomed = stack.start(ses_url=silent_ses, DOMAINFLOW_PROVISIONER_STEP_TIMEOUT="120")
    await stack.ready(doomed)
    event = requested(unique_domain("killed"))
    await publish(event)
    await wait_for_steps(
        stack, event.domain_id, "provision", {"mailserver": "done", "ses_identity": "started"}
    )
    await stack.kill(doomed)
    assert tap.answers(event) == []
    assert await mail_server.has_domain(event.domain)  # half-provisioned, for now

    await stack.ready(stack.start())
    answer = await tap.answer(event)
    assert isinstance(answer, DomainProvisioned), answer
    assert len(answer.dkim_tokens) == 3
    assert await mail_server.has_domain(event.domain)
    assert await identity_exists(stack, event.domain)
    (row,) = await saga_rows(stack, event.domain_id)
    assert row["state"] == "completed"


async def test_the_same_request_delivered_twice_runs_one_saga(
    stack: Stack, bus: tuple[EventTap, Publish]
) -> None:
    tap, publish = bus
    await stack.ready(stack.start())
    event = requested(unique_domain("twice"))
    await publish(event)
    await publish(event)
    answer = await tap.answer(event)
    assert isinstance(answer, DomainProvisioned)
    await asyncio.sleep(2.0)  # room for a second answer, were there to be one
    assert len(tap.answers(event)) == 1
    assert len(await saga_rows(stack, event.domain_id)) == 1


async def test_deletion_removes_the_domain_from_both_systems(
    stack: Stack, bus: tuple[EventTap, Publish], mail_server: MailServer
) -> None:
    tap, publish = bus
    await stack.ready(stack.start())
    event = requested(unique_domain("delete"), mail_from_domain=None)
    await publish(event)
    assert isinstance(await tap.answer(event), DomainProvisioned)
    assert await mail_server.has_domain(event.domain)

    gone = deletion(event)
    await publish(gone)
    answer = await tap.answer(gone)
    assert isinstance(answer, DomainDeprovisioned), answer
    assert answer.domain_id == event.domain_id
    assert not await mail_server.has_domain(event.domain)
    assert not await identity_exists(stack, event.domain)


async def test_a_replica_killed_mid_deletion_converges(
    stack: Stack, bus: tuple[EventTap, Publish], mail_server: MailServer, silent_ses: str
) -> None:
    tap, publish = bus
    healthy = stack.start()
    await stack.ready(healthy)
    event = requested(unique_domain("delkill"))
    await publish(event)
    assert isinstance(await tap.answer(event), DomainProvisioned)
    await stack.stop_all()

    doomed = stack.start(ses_url=silent_ses, DOMAINFLOW_PROVISIONER_STEP_TIMEOUT="120")
    await stack.ready(doomed)
    gone = deletion(event)
    await publish(gone)
    await wait_for_steps(stack, event.domain_id, "deprovision", {"ses_identity": "started"})
    await stack.kill(doomed)
    assert tap.answers(gone) == []

    await stack.ready(stack.start())
    answer = await tap.answer(gone)
    assert isinstance(answer, DomainDeprovisioned), answer
    assert not await mail_server.has_domain(event.domain)
    assert not await identity_exists(stack, event.domain)


async def test_every_ses_call_of_a_domain_goes_to_its_account(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    mail_server: MailServer,
    moto_accounts: MotoAccounts,
) -> None:
    tap, publish = bus
    await stack.ready(stack.start(DOMAINFLOW_SES_ACCOUNTS=moto_accounts.setting()))
    name = unique_domain("accounts")
    event = requested(name, mail_from_domain=f"bounce.{name}", ses_account="gamma")
    await publish(event)
    answer = await tap.answer(event)
    assert isinstance(answer, DomainProvisioned), answer
    assert answer.ses_account == "gamma"
    assert await moto_accounts.holders(name) == ["gamma"]
    assert await moto_accounts.mail_from("gamma", name) == f"bounce.{name}"
    assert not await identity_exists(stack, name)  # nothing in the default account

    gone = DeletionRequested(
        correlation_id=f"req_{uuid.uuid4().hex[:8]}",
        team_id=event.team_id,
        domain_id=event.domain_id,
        domain=name,
        region=REGION,
        ses_account="gamma",
    )
    await publish(gone)
    assert isinstance(await tap.answer(gone), DomainDeprovisioned)
    assert await moto_accounts.holders(name) == []
    assert not await mail_server.has_domain(name)
