"""Driving the in-process api: its client, its loop, keys, and domains moved through its handlers.

`AsyncTestClient` runs the app (and its lifespan: migrations, broker, outbox relay) on an
event loop of its own in a portal thread. Anything that touches the app's database pool
must run on that loop, so `ApiHarness.call` hands coroutines to the portal; and since the
client's requests block the caller until answered, `concurrently` sends requests from
threads so that they really overlap inside the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.testing.transport import TestClientTransport

from domainflow.api.domain.mailboxes import shared_suffix_domain
from domainflow.api.handlers import ApiHandlers
from domainflow.api.settings import ApiSettings
from domainflow.api.teams.keyring import KeyRing
from domainflow.api.teams.service import NewKey, create_key
from domainflow.api.unit_of_work import PostgresUnitOfWork
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    DomainProvisioned,
    RecordCheck,
    RecordKind,
    SesIdentity,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit.database import Database

T = TypeVar("T")

DOMAINS = "/api/v1/domains"
MAILBOXES = "/api/v1/mailboxes"


@contextlib.asynccontextmanager
async def listening(
    api: ApiHarness, *routing_keys: str
) -> AsyncIterator[asyncio.Queue[aio_pika.abc.AbstractIncomingMessage]]:
    """A queue of the test's own on the events exchange: what the api publishes there."""
    heard: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    connection = await aio_pika.connect(api.settings.broker.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        for routing_key in routing_keys:
            await queue.bind(exchange, routing_key=routing_key)
        await queue.consume(heard.put, no_ack=True)
        yield heard
    finally:
        await connection.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unique(prefix: str = "t") -> str:
    """A name no other test (or earlier run against the same database) uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def ses_identity(mail_from: DkimStatus = DkimStatus.SUCCESS) -> SesIdentity:
    """What the verifier reads of a verified identity in SES (its MAIL FROM as given)."""
    return SesIdentity(
        dkim_signing_enabled=True,
        verification_status=DkimStatus.SUCCESS,
        mail_from_status=mail_from,
        verified_for_sending=True,
        checked_at=datetime.now(UTC),
    )


@dataclass
class Request:
    """One request for `ApiHarness.concurrently`."""

    method: str
    url: str
    key: str
    json: Any = None
    delay: float = 0.0  # seconds to wait before sending, to stagger a race
    headers: dict[str, str] | None = None  # sent beside the Authorization header


class ApiHarness:
    def __init__(self, client: AsyncTestClient[Litestar], settings: ApiSettings) -> None:
        self.client = client
        self.settings = settings
        # Shares the client's portal (its app and loop) but is driven from worker threads.
        self._sync = httpx.Client(
            base_url=str(client.base_url),
            transport=TestClientTransport(client=client),  # type: ignore[arg-type]
        )

    @property
    def app(self) -> Litestar:
        app: Litestar = self.client.app
        return app

    @property
    def metrics_url(self) -> str:
        """`/metrics` on the operator's listener (the public port answers 404 there)."""
        return f"http://127.0.0.1:{self.app.state.metrics_port}/metrics"

    async def scrape(self) -> httpx.Response:
        async with httpx.AsyncClient() as operator:
            return await operator.get(self.metrics_url)

    @property
    def db(self) -> Database:
        db: Database = self.app.state.db
        return db

    @property
    def uow(self) -> PostgresUnitOfWork:
        uow: PostgresUnitOfWork = self.app.state.uow
        return uow

    @property
    def handlers(self) -> ApiHandlers:
        return ApiHandlers(self.uow, self.settings)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the app's own event loop and wait for it."""
        portal = self.client.blocking_portal
        return await asyncio.to_thread(portal.call, functools.partial(fn, *args, **kwargs))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async def run() -> Any:
            async with self.db.pool.acquire() as conn:
                return await conn.fetchval(sql, *args)

        return await self.call(run)

    async def key(self, team: str | None = None, role: str = "root:full") -> NewKey:
        return await self.call(
            create_key,
            self.uow,
            team=team or unique("team-"),
            owner_email="owner@example.com",
            role=role,
            prefix=self.settings.keys.prefix,
        )

    def shared_suffix(self, team: NewKey) -> str:
        return shared_suffix_domain(team.team_public_id, self.settings.names.shared_mailbox_domain)

    async def revoke(self, key_id: str) -> bool:
        """Revoke as an api replica does: forgotten by this replica at once (the others hear it
        by NOTIFY; test_api_access.py shows that path too)."""
        keyring: KeyRing = self.app.state.keyring
        return await self.call(keyring.revoke, key_id)

    # --- the domain's life, driven through the api's own handlers ------------------------

    async def add_domain(self, key: str, name: str | None = None) -> dict[str, Any]:
        """POST a domain (it stays `provisioning`: no provisioner runs here)."""
        response = await self.client.post(
            DOMAINS, json={"domain": name or f"{unique('mail')}.example.com"}, headers=auth(key)
        )
        assert response.status_code == 202, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def provision(self, team: NewKey, domain: dict[str, Any]) -> None:
        """The provisioner's answer: the domain becomes `pending`."""
        event = DomainProvisioned(
            correlation_id=unique("req_"),
            team_id=team.team_public_id,
            domain_id=domain["id"],
            domain=domain["domain"],
            region=domain["region"],
            dkim_tokens=[f"{c * 32}" for c in "abc"],
        )
        await self.call(self.handlers.on_provisioned, event)

    async def verification(
        self, team: NewKey, domain: dict[str, Any], outcome: VerificationOutcome
    ) -> None:
        check = CheckOutcome.PASS if outcome == VerificationOutcome.PASSED else CheckOutcome.FAIL
        event = VerificationCompleted(
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
            ses_identity=ses_identity(),
        )
        await self.call(self.handlers.on_verification_completed, event)

    async def pending_domain(self, team: NewKey, name: str | None = None) -> dict[str, Any]:
        domain = await self.add_domain(team.plaintext, name)
        await self.provision(team, domain)
        return domain

    async def verified_domain(self, team: NewKey, name: str | None = None) -> dict[str, Any]:
        domain = await self.pending_domain(team, name)
        await self.verification(team, domain, VerificationOutcome.PASSED)
        return domain

    async def status_of(self, domain_id: str) -> str:
        status: str = await self.fetchval(
            "SELECT status FROM domains WHERE public_id = $1", domain_id
        )
        return status

    # --- requests that overlap --------------------------------------------------------------

    def _send(self, request: Request) -> httpx.Response:
        if request.delay:
            time.sleep(request.delay)
        return self._sync.request(
            request.method,
            request.url,
            json=request.json,
            headers={**auth(request.key), **(request.headers or {})},
        )

    async def concurrently(self, *requests: Request) -> list[httpx.Response]:
        """Send the requests at once, each from its own thread, and wait for every answer."""
        return list(await asyncio.gather(*(asyncio.to_thread(self._send, r) for r in requests)))
