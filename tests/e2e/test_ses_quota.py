"""All four services against an SES that keeps its quotas: together they stay within them.

The provisioner (identities), the verifier (on-demand verifies and its re-check cycle) and
the notifier (owner mails) run as processes against `SesQuotaSandbox`, which throttles like
SES past the account's rates and counts every call. They share one budget, so SES refuses
(nearly) nothing although all three spend it at once; were each to pace itself alone, SES
would refuse a large share. Judged by the proxy's counts, never by a clock.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable
from email.utils import parseaddr
from pathlib import Path

import aiohttp
import pytest

from domainflow.cli.stack import LocalStack
from domainflow.contracts import DnsRecords
from domainflow.kit.database import drop_database
from domainflow.notifier.settings import NotifierSettings
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox, SesQuotaSandbox
from domainflow.sandbox.ports import listening_port
from tests.e2e.conftest import E2E, eventually
from tests.plugins.infra import POSTGRES
from tests.plugins.mailserver import PostmapQuery

pytestmark = pytest.mark.e2e

RATE = 2.0  # SES's non-send requests a second for this account (1 on real SES)
SEND_RATE = 1.0
#: SES clients whose first request may leave late: the provisioner's v1 and v2, the
#: verifier's v1.
COLD_CLIENTS = 3


@pytest.fixture(scope="module")
async def quota_e2e(
    amqp_vhost: Callable[[str], str],
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[E2E, SesQuotaSandbox]]:
    suffix = uuid.uuid4().hex[:6]
    databases = {
        f"DOMAINFLOW_{svc.upper()}_DATABASE_URL": f"{POSTGRES}/dftest_quota_{svc}_{suffix}"
        for svc in ("api", "provisioner", "verifier", "notifier")
    }
    moto_server.verify_sender(parseaddr(NotifierSettings().notify.sender)[1], "us-east-1")
    proxy = SesQuotaSandbox(moto_server.url, rate=RATE, send_rate=SEND_RATE)
    proxy.start()
    env = {
        **os.environ,
        **databases,
        "DOMAINFLOW_AMQP_URL": amqp_vhost("quota"),
        "DOMAINFLOW_MAILSERVER_DATABASE_URL": mailserver_database_url,
        "DOMAINFLOW_DOH_URL": dns_sandbox.doh_url,
        "DOMAINFLOW_DOH_CA_FILE": str(dns_sandbox.ca_file),
        # The sandbox resolver serves the names set aside for examples, as `make up` does.
        "DOMAINFLOW_SPECIAL_USE_ALLOWED": '["example", "example.com", "test"]',
        "DOMAINFLOW_API_PORT": str(listening_port()),
        "DOMAINFLOW_API_METRICS_PORT": str(listening_port()),
        "DOMAINFLOW_PROVISIONER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_VERIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_NOTIFIER_HEALTH_PORT": str(listening_port()),
        "DOMAINFLOW_REVERIFY_INTERVAL": "2",
        "DOMAINFLOW_REVERIFY_TICK": "0.5",
        "DOMAINFLOW_DOMAIN_WRITE_RATE": "0",
        "DOMAINFLOW_SES_RATE": str(RATE),
        "DOMAINFLOW_SES_SEND_RATE": str(SEND_RATE),
        "DOMAINFLOW_SES_ACCOUNT": f"acct-{suffix}",
        "DOMAINFLOW_STATE_DIR": str(tmp_path_factory.mktemp("quota-stack")),
        "AWS_ENDPOINT_URL": proxy.url,
    }
    stack = LocalStack(env, Path(env["DOMAINFLOW_STATE_DIR"]))
    await asyncio.to_thread(stack.migrate)
    for service in ("api", "provisioner", "verifier", "notifier"):
        stack.start_service(service)
    try:
        await asyncio.to_thread(stack.wait_ready, 90.0)
        async with aiohttp.ClientSession() as http:
            yield E2E(stack, http, moto_server, dns_sandbox), proxy
    finally:
        await asyncio.to_thread(stack.stop)
        proxy.stop()
        for url in databases.values():
            await drop_database(url)


async def _in_map(postmap_query: PostmapQuery, name: str) -> bool:
    return await postmap_query(name) == name


async def _status(e2e: E2E, key: str, domain_id: str) -> str:
    _, body = await e2e.call("GET", f"/domains/{domain_id}", key)
    return str(body["data"]["state"])


async def test_provisioner_verifier_and_notifier_together_stay_within_the_rates(
    quota_e2e: tuple[E2E, SesQuotaSandbox], postmap_query: PostmapQuery
) -> None:
    e2e, proxy = quota_e2e
    proxy.reset()
    teams = [f"quota-{t}-{uuid.uuid4().hex[:4]}" for t in range(2)]
    owners = {t: f"owner@{t}.example" for t in teams}
    keys = {t: await e2e.key(t, (owners[t],)) for t in teams}
    names = {t: [f"mail.q{i}-{uuid.uuid4().hex[:6]}.example" for i in range(4)] for t in teams}

    async def add(team: str, name: str) -> str:
        status, body = await e2e.call("POST", "/domains", keys[team], json={"domain": name})
        assert status in (201, 202), body
        return str(body["data"]["id"])

    created = await asyncio.gather(*(add(t, n) for t in teams for n in names[t]))
    ids = dict(zip([(t, n) for t in teams for n in names[t]], created, strict=True))

    # Every domain is provisioned (never rolled back), while the cycle re-checks the first.
    async def all_pending() -> bool:
        states = [await _status(e2e, keys[t], i) for (t, _), i in ids.items()]
        assert "failed" not in states, states
        return all(s == "pending" for s in states)

    await eventually(all_pending, timeout=90)
    # Each team places the records of two domains and verifies them at once: the verifier's
    # DKIM lookups and the cycle's, then the owners' mails, all on the same account.
    verifying = [(t, n) for t in teams for n in names[t][:2]]
    for team, name in verifying:
        _, records = await e2e.call("GET", f"/domains/{ids[(team, name)]}/dns-records", keys[team])
        e2e.dns.place(DnsRecords.model_validate(records["data"]))
    answers = await asyncio.gather(
        *(e2e.call("POST", f"/domains/{ids[(t, n)]}/verify", keys[t]) for t, n in verifying)
    )
    assert all(status in (200, 202) for status, _ in answers), answers

    async def verified() -> bool:
        return all([await _status(e2e, keys[t], ids[(t, n)]) == "verified" for t, n in verifying])

    await eventually(verified, timeout=60)
    await eventually(lambda: all(e2e.emails_to(owners[t]) for t in teams), timeout=60)
    # On the mail server once a verification has seen the ownership TXT, not before.
    for team, name in ids:
        if (team, name) in verifying:
            await eventually(functools.partial(_in_map, postmap_query, name), timeout=60)
        else:
            assert await postmap_query(name) is None

    requests = proxy.calls("request")
    sends = proxy.calls("send")
    assert sends, "the notifier sent through SES"
    actions = {c.action for c in requests}
    assert "GetIdentityDkimAttributes" in actions  # the verifier spent the same budget
    assert any(a.startswith("POST /v2/email/identities") for a in actions)  # the provisioner
    # Together they never offered SES more than a stray late call beyond its rates: the
    # first request of each fresh client (three here) opens its connection after the
    # budget's last look and may arrive late; past those, a stray late one in four at most
    # on a busy host (three services each pacing alone would offer SES up to three times
    # its rate and be refused for half their calls and more).
    throttled = [c for c in requests if not c.accepted]
    assert len(throttled) <= COLD_CLIENTS + len(requests) // 4, proxy.per_second()
    # The notifier's one fresh client: its first mail at most.
    assert len([c for c in sends if not c.accepted]) <= 1, proxy.per_second("send")
    assert proxy.most_in_a_second("request", accepted=True) <= RATE
