"""Benchmark: a burst of creates from several teams against an SES that keeps its quotas.

Runs the four services as processes (as `make run` does) on databases and a RabbitMQ vhost
of their own, with SES behind `SesQuotaSandbox` (moto behind a hop that throttles exactly like
SES past `--rate` non-send requests a second) and the DoH sandbox. Then `--domains` creates
(default 500) arrive at once from `--teams` teams (default 5), and, once a fifth of them is
provisioned, one create from a quiet team. It prints:

- the ratio of the elapsed time to its floor, the accepted SES calls at the quota:
  elapsed / (accepted calls / rate) (target <= 1.1), measured in the same run;
- the calls SES throttled (target < 1 % of the accepted ones);
- for each team, the time from request to provisioned of its first and last domain;
- the quiet team's time from request to provisioned (target: a few seconds);
- every failure (an answer other than 201/202, a rollback).

The per-team budget at the HTTP edge (`DOMAINFLOW_DOMAIN_WRITE_RATE`) is switched off: it
is not what is measured. Run:

    .venv/bin/python benchmarks/ses_burst.py [--domains 500] [--teams 5] [--rate 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg

from domainflow.cli.stack import LocalStack
from domainflow.kit.database import drop_database
from domainflow.kit.settings import DEFAULT_POSTGRES
from domainflow.notifier.settings import NotifierSettings
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox, SesQuotaSandbox
from domainflow.sandbox.ports import listening_port

POSTGRES = os.environ.get("DOMAINFLOW_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
AMQP_ROOT = os.environ.get("DOMAINFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
REGION = "us-east-1"
SERVICES = ("api", "provisioner", "verifier", "notifier")


@dataclass
class Create:
    team: str
    domain: str
    asked_at: float
    status: int = 0
    domain_id: str | None = None
    error: str | None = None


@dataclass
class Run:
    creates: list[Create] = field(default_factory=list)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


async def make_key(api_db: str, team: str) -> str:
    from domainflow.api.teams import service as teams
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.kit.database import Database

    db = await Database.connect(api_db, size=1)
    try:
        key = await teams.create_key(
            PostgresUnitOfWork(db),
            team=team,
            owner_email=f"ops@{team}.example",
            role="root:full",
            prefix="smx",
        )
    finally:
        await db.close()
    return key.plaintext


async def create(http: aiohttp.ClientSession, api: str, key: str, team: str, domain: str) -> Create:
    made = Create(team, domain, time.time())
    try:
        async with http.post(
            f"{api}/domains",
            json={"domain": domain},
            headers={"Authorization": f"Bearer {key}"},
        ) as answer:
            made.status = answer.status
            body = await answer.json()
    except (aiohttp.ClientError, TimeoutError) as error:
        made.error = repr(error)
        return made
    if answer.status in (201, 202):
        made.domain_id = body["data"]["id"]
    else:
        made.error = json.dumps(body)[:300]
    return made


class Sagas:
    """The provisioner's sagas, read over one connection (PostgreSQL is shared here)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None

    async def finished(self) -> dict[str, tuple[str, float, float]]:
        """domain_id -> (state, finished_at, created_at as Unix times) of finished provisionings."""
        if self._conn is None:
            self._conn = await asyncpg.connect(self._url)
        rows = await self._conn.fetch(
            "SELECT domain_id, state, extract(epoch FROM finished_at)::float8 AS at,"
            " extract(epoch FROM created_at)::float8 AS created"
            " FROM sagas WHERE kind = 'provision' AND finished_at IS NOT NULL"
        )
        return {r["domain_id"]: (r["state"], r["at"], r["created"]) for r in rows}

    async def at_least(self, count: int) -> dict[str, tuple[str, float, float]]:
        """Poll until `count` provisionings have finished."""
        while len(done := await self.finished()) < count:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.5)
        return done

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def burst(args: argparse.Namespace, stack: LocalStack, proxy: SesQuotaSandbox) -> None:
    env = stack.env
    api = f"http://127.0.0.1:{env['DOMAINFLOW_API_PORT']}/api/v1"
    run_id = uuid.uuid4().hex[:6]
    teams = [f"team{t}-{run_id}" for t in range(args.teams)]
    quiet_team = f"quiet-{run_id}"
    keys = {t: await make_key(env["DOMAINFLOW_API_DATABASE_URL"], t) for t in [*teams, quiet_team]}
    per_team = args.domains // args.teams
    # Arrival order: each team's whole burst is sent together, team after team, as the worst
    # case for fairness (the last team's first create arrives behind everyone's).
    wanted = [(t, f"d{i:04d}.{t}.bench.example") for t in teams for i in range(per_team)]

    proxy.reset()
    sagas = Sagas(env["DOMAINFLOW_PROVISIONER_DATABASE_URL"])
    limit = asyncio.Semaphore(args.connections)
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(team: str, domain: str) -> Create:
            async with limit:
                return await create(http, api, keys[team], team, domain)

        started = time.time()
        tasks = [asyncio.create_task(one(t, d)) for t, d in wanted]
        # The quiet team asks once a fifth of the burst is provisioned, as a client of its
        # own: the bursting teams' client holds all its connections, waiting on answers.
        await sagas.at_least(len(wanted) // 5)
        async with aiohttp.ClientSession(timeout=timeout) as own:
            quiet = await create(
                own, api, keys[quiet_team], quiet_team, f"mail.{quiet_team}.example"
            )
        creates = await asyncio.gather(*tasks)

    answered = [c for c in [*creates, quiet] if c.domain_id is not None]
    done = await sagas.at_least(len(answered))
    await sagas.close()
    report(args, started, creates, quiet, done, proxy)


def report(
    args: argparse.Namespace,
    started: float,
    creates: list[Create],
    quiet: Create,
    done: dict[str, tuple[str, float, float]],
    proxy: SesQuotaSandbox,
) -> None:
    accepted = proxy.calls("request", accepted=True)
    throttled = proxy.calls("request", accepted=False)
    sends = proxy.calls("send")
    last = max(at for _, at, _ in done.values())
    elapsed = last - started
    floor = len(accepted) / args.rate
    failures = [c for c in [*creates, quiet] if c.domain_id is None]
    rolled_back = [d for d, (state, _, _) in done.items() if state != "completed"]
    print(f"creates: {len(creates)} from {args.teams} teams at {args.rate:g} SES request/s")
    print(
        f"answers: {sum(c.status == 201 for c in creates)} x 201, "
        f"{sum(c.status == 202 for c in creates)} x 202"
    )
    print(
        f"elapsed: {elapsed:.1f} s; floor (accepted SES calls / rate): {floor:.1f} s "
        f"({len(accepted)} calls)"
    )
    print(f"ratio elapsed / floor: {elapsed / floor:.3f}  (target <= 1.1)")
    share = 100 * len(throttled) / max(1, len(accepted))
    print(
        f"throttled calls: {len(throttled)} ({share:.2f} % of accepted; target < 1 %); "
        f"sends: {len(sends)}"
    )
    print(f"most SES requests accepted in any one second: {proxy.most_in_a_second(accepted=True)}")
    by_team: dict[str, list[float]] = {}
    for c in creates:
        if c.domain_id in done:
            by_team.setdefault(c.team, []).append(done[c.domain_id][1] - c.asked_at)
    for team, waits in sorted(by_team.items()):
        print(
            f"  {team}: first provisioned {min(waits):.1f} s, last {max(waits):.1f} s "
            f"after its request ({len(waits)} domains)"
        )
    if quiet.domain_id in done:
        _, at, created = done[quiet.domain_id]
        print(
            f"quiet team's single create during the burst: provisioned {at - quiet.asked_at:.1f}"
            f" s after its request (answered {quiet.status}; its saga was recorded"
            f" {created - quiet.asked_at:.1f} s after the request)"
        )
    if args.details:
        previous = None
        for call in sorted(proxy.calls("request"), key=lambda c: c.at):
            if not call.accepted and previous is not None:
                print(
                    f"  throttled {call.action} {call.at - previous.at:.3f} s after"
                    f" the accepted {previous.action}"
                )
            if call.accepted:
                previous = call
    print(f"failures: {len(failures)} unanswered or refused, {len(rolled_back)} rolled back")
    for c in failures[:10]:
        print(f"  {c.domain}: {c.status} {c.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--teams", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1.0, help="SES non-send requests/s")
    parser.add_argument("--connections", type=int, default=20, help="HTTP requests at once")
    parser.add_argument("--details", action="store_true", help="print each throttled call")
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="ses-burst-"))
    databases = {
        f"DOMAINFLOW_{svc.upper()}_DATABASE_URL": f"{POSTGRES}/dfbench_{svc}_{suffix}"
        for svc in (*SERVICES, "ses_budget", "mailserver")
    }
    vhost = f"domainflow-bench-{suffix}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    moto = MotoSandbox(log_path=workdir / "moto.log")
    moto.start()
    moto.verify_sender(parseaddr(NotifierSettings().notify.sender)[1], REGION)
    proxy = SesQuotaSandbox(moto.url, rate=args.rate, send_rate=args.rate)
    proxy.start()
    dns = DnsSandbox(workdir / "dns")
    dns.start()
    env = {
        **os.environ,
        **databases,
        "DOMAINFLOW_AMQP_URL": f"{AMQP_ROOT}/{quote(vhost, safe='')}",
        "DOMAINFLOW_DOH_URL": dns.doh_url,
        "DOMAINFLOW_DOH_CA_FILE": str(dns.ca_file),
        # Its names are under .example, which the sandbox resolver serves.
        "DOMAINFLOW_SPECIAL_USE_ALLOWED": '["example", "example.com", "test"]',
        "DOMAINFLOW_API_PORT": str(listening_port()),
        "DOMAINFLOW_API_METRICS_PORT": str(listening_port()),
        "DOMAINFLOW_PROVISIONER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_VERIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_NOTIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_DOMAIN_WRITE_RATE": "0",
        "DOMAINFLOW_DATABASE_POOL_SIZE": "4",  # PostgreSQL's connections are shared here
        "DOMAINFLOW_SES_RATE": str(args.rate),
        "DOMAINFLOW_SES_SEND_RATE": str(args.rate),
        "DOMAINFLOW_LOG_LEVEL": "WARNING",
        "DOMAINFLOW_STATE_DIR": str(workdir),
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    stack = LocalStack(env, workdir)
    try:
        stack.migrate()
        for service in SERVICES:
            stack.start_service(service)
        stack.wait_ready(120)
        asyncio.run(burst(args, stack, proxy))
    finally:
        stack.stop()
        proxy.stop()
        dns.stop()
        moto.stop()
        for url in databases.values():
            asyncio.run(drop_database(url))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
