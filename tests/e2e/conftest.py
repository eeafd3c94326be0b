"""The whole stack for end-to-end tests: the four services as OS processes (two api replicas)
on a RabbitMQ vhost and databases of their own, against the session's moto, DoH sandbox and
mail-server database."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from domainflow.cli.stack import LocalStack
from domainflow.kit.database import drop_database
from domainflow.notifier.settings import NotifierSettings
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox
from domainflow.sandbox.ports import listening_port
from tests.plugins.infra import POSTGRES

REVERIFY_INTERVAL = 3.0


class E2E:
    """Drives the stack: HTTP calls to either api replica, and the sandboxes."""

    def __init__(
        self, stack: LocalStack, http: aiohttp.ClientSession, moto: MotoSandbox, dns: DnsSandbox
    ) -> None:
        self.stack = stack
        self.http = http
        self.moto = moto
        self.dns = dns
        self.api_port = int(stack.env["DOMAINFLOW_API_PORT"])

    def url(self, path: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.api_port + replica}/api/v1{path}"

    async def call(
        self, method: str, path: str, key: str, *, replica: int = 0, json: Any = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.request(
            method, self.url(path, replica), json=json, headers={"Authorization": f"Bearer {key}"}
        ) as answer:
            return answer.status, await answer.json()

    async def key(self, team: str, owners: tuple[str, ...] = ()) -> str:
        from domainflow.api.teams import service as teams
        from domainflow.api.unit_of_work import PostgresUnitOfWork
        from domainflow.kit.database import Database

        db = await Database.connect(self.stack.env["DOMAINFLOW_API_DATABASE_URL"], size=1)
        uow = PostgresUnitOfWork(db)
        try:
            key = await teams.create_key(
                uow,
                team=team,
                owner_email=owners[0] if owners else None,
                role="root:full",
                prefix="smx",
            )
            for extra in owners[1:]:
                await teams.add_member(uow, team=team, email=extra, role="owner")
        finally:
            await db.close()
        return key.plaintext

    def emails_to(self, address: str) -> list[Any]:
        return [m for m in self.moto.sent_emails() if address in str(m.destinations)]


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    interval: float = 0.3,
) -> Any:
    """Poll an (async or plain) check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {check}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_stack(
    amqp_vhost: Callable[[str], str],
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    state_dir: Path,
    *,
    name: str = "e2e",
    api_replicas: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[E2E]:
    """The four services as processes, on a vhost (`name`) and databases of their own."""
    suffix = uuid.uuid4().hex[:6]
    databases = {
        f"DOMAINFLOW_{svc.upper()}_DATABASE_URL": f"{POSTGRES}/dftest_{name}_{svc}_{suffix}"
        for svc in ("api", "provisioner", "verifier", "notifier")
    }
    api_port = listening_port(span=2)  # the two replicas listen on adjacent ports
    env = {
        **os.environ,
        **databases,
        "DOMAINFLOW_AMQP_URL": amqp_vhost(name),
        "DOMAINFLOW_MAILSERVER_DATABASE_URL": mailserver_database_url,
        "DOMAINFLOW_DOH_URL": dns_sandbox.doh_url,
        "DOMAINFLOW_DOH_CA_FILE": str(dns_sandbox.ca_file),
        # The sandbox resolver serves the names set aside for examples, as `make up` does.
        "DOMAINFLOW_SPECIAL_USE_ALLOWED": '["example", "example.com", "test"]',
        "DOMAINFLOW_API_PORT": str(api_port),
        "DOMAINFLOW_API_METRICS_PORT": str(listening_port(span=2)),
        "DOMAINFLOW_PROVISIONER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_VERIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_NOTIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_REVERIFY_INTERVAL": str(REVERIFY_INTERVAL),
        "DOMAINFLOW_REVERIFY_TICK": "0.5",
        "DOMAINFLOW_SES_RATE": "20",
        "DOMAINFLOW_LOG_LEVEL": "INFO",
        "DOMAINFLOW_STATE_DIR": str(state_dir),
        **(extra_env or {}),
    }
    moto_server.verify_sender(parseaddr(NotifierSettings().notify.sender)[1], "us-east-1")
    stack = LocalStack(env, Path(env["DOMAINFLOW_STATE_DIR"]))
    await asyncio.to_thread(stack.migrate)
    for service in ("api", "provisioner", "verifier", "notifier"):
        for replica in range(api_replicas if service == "api" else 1):
            stack.start_service(service, replica)
    try:
        await asyncio.to_thread(stack.wait_ready, 90.0)
        async with aiohttp.ClientSession() as http:
            yield E2E(stack, http, moto_server, dns_sandbox)
    finally:
        await asyncio.to_thread(stack.stop)
        for url in databases.values():
            await drop_database(url)


@pytest.fixture(scope="session")
async def e2e(
    amqp_vhost: Callable[[str], str],
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[E2E]:
    async with running_stack(
        amqp_vhost,
        moto_server,
        dns_sandbox,
        mailserver_database_url,
        tmp_path_factory.mktemp("stack"),
    ) as stack:
        yield stack
