"""Real faults under the real service processes: RabbitMQ nodes killed (`kill -9`) and brought
back under a burst of domain lifecycles, then a PostgreSQL restart and a RabbitMQ
`stop_app`/`start_app` in the middle of one. Each runs on servers of its own (a three-node
RabbitMQ cluster, a PostgreSQL cluster), never the machine's."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import aioboto3
import aiohttp
import asyncpg
import pytest

from domainflow.cli.stack import LocalStack, is_ready
from domainflow.contracts import DnsRecords
from domainflow.contracts.topology import EVENTS_EXCHANGE
from domainflow.kit import dead_letters
from domainflow.notifier.settings import NotifierSettings
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox
from domainflow.sandbox.ports import listening_port
from tests.e2e.conftest import E2E, eventually
from tests.e2e.rabbit_cluster import PostgresCluster, RabbitCluster, installed
from tests.plugins.mailserver import PostmapQuery

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(installed() is not None, reason=str(installed())),
    # Bounded: starting three RabbitMQ nodes, a PostgreSQL cluster and eight replicas on a
    # busy two-core machine takes part of it; every wait inside has its own deadline too.
    pytest.mark.timeout(600),
]

SERVICES = ("api", "provisioner", "verifier", "notifier")
REVERIFY_INTERVAL = 3.0
#: Every step of a lifecycle as the platform's subscribers hear it, once each.
LIFE = [
    ("provisioning", "pending"),
    ("pending", "verified"),
    ("verified", "deleting"),
    ("deleting", "deleted"),
]


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.drop()


def _databases(cluster: PostgresCluster, prefix: str) -> dict[str, str]:
    """Each service's database on the test's own PostgreSQL (the machine's serves the other
    tests, and eight more replicas' pools would crowd it)."""
    return {
        f"DOMAINFLOW_{svc.upper()}_DATABASE_URL": f"{cluster.url}/{prefix}_{svc}"
        for svc in SERVICES
    }


def _name() -> str:
    return f"mail.fault-{uuid.uuid4().hex[:8]}.example"


@dataclass
class Replicas:
    """Two replicas of every service, each its own OS process, and their readiness URLs."""

    stack: LocalStack
    ready_urls: list[str] = field(default_factory=list)


async def _stack(
    tmp: Path,
    *,
    databases: dict[str, str],
    amqp_urls: list[str],
    moto: MotoSandbox,
    dns: DnsSandbox,
    mailserver_url: str,
    replicas: int,
) -> Replicas:
    api_port = listening_port(span=replicas)
    env = {
        **os.environ,
        **databases,
        "DOMAINFLOW_AMQP_URLS": json.dumps(amqp_urls),
        "DOMAINFLOW_MAILSERVER_DATABASE_URL": mailserver_url,
        "DOMAINFLOW_DOH_URL": dns.doh_url,
        "DOMAINFLOW_DOH_CA_FILE": str(dns.ca_file),
        # The sandbox resolver serves the names set aside for examples, as `make up` does.
        "DOMAINFLOW_SPECIAL_USE_ALLOWED": '["example", "example.com", "test"]',
        "DOMAINFLOW_API_PORT": str(api_port),
        "DOMAINFLOW_API_METRICS_PORT": str(listening_port(span=replicas)),
        "DOMAINFLOW_REVERIFY_INTERVAL": str(REVERIFY_INTERVAL),
        "DOMAINFLOW_REVERIFY_TICK": "0.5",
        "DOMAINFLOW_SES_RATE": "20",
        "DOMAINFLOW_DATABASE_POOL_SIZE": "4",
        "DOMAINFLOW_LOG_LEVEL": "INFO",
        "DOMAINFLOW_STATE_DIR": str(tmp),
    }
    env.pop("DOMAINFLOW_AMQP_URL", None)
    moto.verify_sender(parseaddr(NotifierSettings().notify.sender)[1], "us-east-1")
    stack = LocalStack(env, tmp)
    await asyncio.to_thread(stack.migrate)
    started = Replicas(stack)
    for service in SERVICES:
        for replica in range(replicas):
            if service == "api":
                port = api_port + replica
                stack.start_service(service, replica)
            else:
                port = listening_port()
                stack.start_service(
                    service, replica, {f"DOMAINFLOW_{service.upper()}_HEALTH_PORT": str(port)}
                )
            started.ready_urls.append(f"http://127.0.0.1:{port}/readyz")
    for url in started.ready_urls:
        await eventually(partial(asyncio.to_thread, is_ready, url), timeout=120)
    return started


async def _all_ready(replicas: Replicas) -> bool:
    ready = [await asyncio.to_thread(is_ready, url) for url in replicas.ready_urls]
    return all(ready)


async def _drained(databases: dict[str, str]) -> dict[str, int]:
    """Rows still waiting in each service's outbox."""
    waiting = {}
    for variable, url in databases.items():
        connection = await asyncpg.connect(url)
        try:
            waiting[variable] = int(await connection.fetchval("SELECT count(*) FROM outbox"))
        finally:
            await connection.close()
    return waiting


class Subscriber:
    """The platform's own service: a durable quorum queue of its own on the events exchange,
    so what it hears survives the node it is connected to going away."""

    def __init__(self, urls: list[str]) -> None:
        self._urls = urls
        self.queue = f"fault-test-{uuid.uuid4().hex[:6]}"
        self.heard: list[dict[str, Any]] = []

    async def __aenter__(self) -> Subscriber:
        self._connection = await aio_pika.connect_robust(self._urls[-1])
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            self.queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for key in ("domain.status_changed", "domain.deleted"):
            await queue.bind(exchange, routing_key=key)

        async def hear(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.heard.append(json.loads(message.body))

        await queue.consume(hear)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    def moves(self, domain_id: str) -> list[tuple[str, str]]:
        """The status moves of one domain, one per distinct event (a redelivered event is
        the same event; a move applied twice would be two)."""
        distinct = {
            e["event_id"]: e
            for e in self.heard
            if e.get("domain_id") == domain_id
            and e["type"] == "domain.status_changed"
            and e["version"] == 2  # version 1 is published beside it, for now
        }
        ordered = sorted(distinct.values(), key=lambda e: e["occurred_at"])
        return [(e["old_status"], e["new_status"]) for e in ordered]


@dataclass
class Progress:
    created: int = 0
    verified: int = 0
    deleted: int = 0


async def _lifecycle(
    e2e: E2E, index: int, progress: Progress, replicas: int, stagger: float
) -> tuple[str, str, str]:
    """Create, let it verify, see one re-verification, delete: (name, public id, owner)."""
    await asyncio.sleep(index * stagger)  # a burst spread over the faults, not one instant
    owner = f"owner-{uuid.uuid4().hex[:8]}@fault.example"
    key = await e2e.key(f"fault-{uuid.uuid4().hex[:6]}", (owner,))
    name = _name()
    status, body = await e2e.call(
        "POST", "/domains", key, replica=index % replicas, json={"domain": name}
    )
    assert status in (201, 202), body
    public_id = body["data"]["id"]
    progress.created += 1

    async def state() -> dict[str, Any]:
        _, got = await e2e.call("GET", f"/domains/{public_id}", key, replica=index % replicas)
        return dict(got.get("data") or {})

    await eventually(lambda: _status_in(state, {"pending"}), timeout=120)
    _, records = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    placed = DnsRecords.model_validate(records["data"])
    e2e.dns.place(placed)
    await eventually(lambda: _status_in(state, {"verified"}), timeout=120)
    first_check = (await state())["last_checked_at"]
    progress.verified += 1

    async def checked_again() -> bool:
        return bool((await state()).get("last_checked_at") != first_check)

    await eventually(checked_again, timeout=120)  # a re-verification after the verification
    status, body = await e2e.call("DELETE", f"/domains/{public_id}", key)
    assert status in (200, 202), body

    async def gone() -> bool:
        status, _ = await e2e.call("GET", f"/domains/{public_id}", key)
        return status == 404

    await eventually(gone, timeout=120)
    progress.deleted += 1
    e2e.dns.remove(placed)
    return name, public_id, owner


def _notifier_logs(tmp: Path) -> str:
    """What the notifiers said about mails, for a failure to show where one went."""
    lines = [
        line[:400]
        for log in sorted(tmp.glob("notifier-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "notification" in line or "Error" in line
    ]
    return "\n".join(lines[-60:])


async def _status_in(state: Any, wanted: set[str]) -> bool:
    return (await state()).get("verification_status") in wanted


async def _ses_identities(moto: MotoSandbox) -> set[str]:
    session = aioboto3.Session()
    async with session.client("ses", region_name="us-east-1", endpoint_url=moto.url) as ses:
        listed = await ses.list_identities(IdentityType="Domain")
    return set(listed["Identities"])


async def _nothing_parked(url: str) -> None:
    parked = {p.dead_letter_queue: p.parked for p in await dead_letters.parked(url) if p.parked}
    assert parked == {}


DOMAINS = 8

Faults = Callable[[Replicas, Progress], Awaitable[None]]


async def _lifecycles_through(
    faults: Faults,
    *,
    count: int,
    replicas: int,
    stagger: float,
    databases: dict[str, str],
    rabbit_cluster: RabbitCluster,
    moto: MotoSandbox,
    dns: DnsSandbox,
    mailserver_database_url: str,
    postmap_query: PostmapQuery,
    tmp_path: Path,
) -> None:
    """`count` lifecycles on a stack of `replicas` replicas per service while `faults` runs;
    then check that every domain ended where it should and nothing was lost or doubled."""
    urls = rabbit_cluster.urls
    stack = await _stack(
        tmp_path,
        databases=databases,
        amqp_urls=urls,
        moto=moto,
        dns=dns,
        mailserver_url=mailserver_database_url,
        replicas=replicas,
    )
    try:
        async with aiohttp.ClientSession() as http, Subscriber(urls) as platform:
            e2e = E2E(stack.stack, http, moto, dns)
            progress = Progress()
            lives = asyncio.gather(
                *(_lifecycle(e2e, i, progress, replicas, stagger) for i in range(count))
            )
            done, _ = await asyncio.gather(lives, faults(stack, progress))

            # Every domain ended where it should: gone from the api, SES and the mail server.
            names = {name for name, _, _ in done}
            assert names & await _ses_identities(moto) == set()
            for name in names:
                assert await postmap_query(name) is None
            # Every step heard once, none lost, none applied twice.
            for _, public_id, _ in done:
                await eventually(partial(_heard_once_each, platform, public_id), timeout=60)
            # The outboxes drain and nothing was parked.
            await eventually(lambda: _all_zero(_drained(databases)), timeout=60)
            await _nothing_parked(urls[-1])
            # Each owner was emailed once (that the domain was verified), never twice.
            for _, _, owner in done:
                try:
                    await eventually(partial(e2e.emails_to, owner), timeout=60)
                except AssertionError as missing:
                    raise AssertionError(f"{missing}\n{_notifier_logs(tmp_path)}") from None
            await asyncio.sleep(REVERIFY_INTERVAL * 2)  # time for a duplicate to show
            assert {o: len(e2e.emails_to(o)) for _, _, o in done} == {o: 1 for _, _, o in done}
    finally:
        await asyncio.to_thread(stack.stack.stop)


async def test_a_burst_of_lifecycles_outlives_two_killed_rabbitmq_nodes(
    rabbit_cluster: RabbitCluster,
    postgres_cluster: PostgresCluster,
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    postmap_query: PostmapQuery,
    tmp_path: Path,
) -> None:
    async def faults(replicas: Replicas, progress: Progress) -> None:
        # The subscriber sits on node 3; nodes 1 and 2 die, one after the other.
        await eventually(lambda: progress.created >= 2, timeout=120)
        await asyncio.to_thread(rabbit_cluster.kill, 1)
        # Every replica is back on a surviving node while node 1 is still dead.
        await eventually(partial(_all_ready, replicas), timeout=60)
        await eventually(lambda: progress.verified >= DOMAINS // 2, timeout=180)
        await asyncio.to_thread(rabbit_cluster.revive, 1)
        await asyncio.to_thread(rabbit_cluster.kill, 2)
        await eventually(partial(_all_ready, replicas), timeout=60)
        await eventually(lambda: progress.deleted >= DOMAINS // 2, timeout=180)
        await asyncio.to_thread(rabbit_cluster.revive, 2)

    await _lifecycles_through(
        faults,
        count=DOMAINS,
        replicas=2,
        stagger=0.7,
        databases=_databases(postgres_cluster, "burst"),
        rabbit_cluster=rabbit_cluster,
        moto=moto_server,
        dns=dns_sandbox,
        mailserver_database_url=mailserver_database_url,
        postmap_query=postmap_query,
        tmp_path=tmp_path,
    )


async def test_lifecycles_outlive_a_postgresql_restart_and_a_rabbitmq_stop_app(
    rabbit_cluster: RabbitCluster,
    postgres_cluster: PostgresCluster,
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    postmap_query: PostmapQuery,
    tmp_path: Path,
) -> None:
    own = _databases(postgres_cluster, "restart")

    async def faults(replicas: Replicas, progress: Progress) -> None:
        # Every domain is added first (a create during the restart is the client's to retry),
        # then PostgreSQL restarts under their provisioning and verification.
        await eventually(lambda: progress.created >= 3, timeout=120)
        await asyncio.to_thread(postgres_cluster.restart)
        await eventually(partial(_all_ready, replicas), timeout=120)
        await eventually(lambda: progress.verified >= 1, timeout=180)
        await asyncio.to_thread(rabbit_cluster.ctl, 1, "stop_app")
        try:
            await eventually(partial(_all_ready, replicas), timeout=60)
        finally:
            await asyncio.to_thread(rabbit_cluster.ctl, 1, "start_app")

    await _lifecycles_through(
        faults,
        count=3,
        replicas=1,
        stagger=0,
        databases=own,
        rabbit_cluster=rabbit_cluster,
        moto=moto_server,
        dns=dns_sandbox,
        mailserver_database_url=mailserver_database_url,
        postmap_query=postmap_query,
        tmp_path=tmp_path,
    )


def _heard_once_each(platform: Subscriber, public_id: str) -> bool:
    return platform.moves(public_id) == LIFE


async def _all_zero(counts: Any) -> bool:
    return not any((await counts).values())
