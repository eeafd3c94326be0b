"""The provisioner against an SES that keeps its quotas: bursts end provisioned, never orphaned.

The service runs as a process, as in `test_saga_service`, but its SES is `SesQuotaSandbox` in
front of moto: past the account's rate it answers `Throttling` (v1, HTTP 400) and
`TooManyRequestsException` (v2, HTTP 429) as SES does, and it counts every call it saw.
What is left behind is judged by moto itself and by the mail server's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from domainflow.contracts import DomainProvisioned, Event, ProvisioningRolledBack
from domainflow.provisioner.adapters.mailserver import MailServer
from domainflow.sandbox.moto import TEST_ACCESS_KEY, MotoSandbox, SesQuotaSandbox
from tests.integration.provisioner.test_saga_service import (
    REGION,
    EventTap,
    Publish,
    Stack,
    bus,
    identity_exists,
    requested,
    saga_rows,
    stack,
    unique_domain,
)

pytestmark = pytest.mark.integration

__all__ = ["bus", "stack"]  # fixtures, shared with the service's other scenarios

RATE = 2.0  # SES's non-send requests a second for this account (1 on real SES)
#: SES's bucket lets a request that left late pass beside the next one: a loaded machine
#: wakes a caller late, which says nothing about the budget.
BURST = 2.0
#: Calls each create makes on moto: CreateEmailIdentity (v2, no tokens from moto), then
#: VerifyDomainDkim (v1), then SetIdentityMailFromDomain (v1) when a MAIL FROM is asked.
CALLS_PER_CREATE = 2


@pytest.fixture
def quota(fresh_moto: MotoSandbox) -> Iterator[SesQuotaSandbox]:
    with SesQuotaSandbox(fresh_moto.url, rate=RATE, send_rate=RATE, burst=BURST) as proxy:
        yield proxy


def start(stack: Stack, quota: SesQuotaSandbox, **extra: str) -> Any:
    return stack.start(
        ses_url=quota.url,
        DOMAINFLOW_SES_RATE=str(RATE),
        DOMAINFLOW_SES_ACCOUNT=f"acct-{uuid.uuid4().hex[:8]}",  # a budget of this test's own
        **{"DOMAINFLOW_PROVISIONER_CONCURRENCY": "2", **extra},
    )


def troubles(stack: Stack) -> list[str]:
    """The provisioner's warnings and errors: why a saga rolled back, when one did."""
    return [
        line
        for log in stack.logs
        for line in log.read_text(errors="replace").splitlines()
        if "warning" in line.lower() or "error" in line.lower()
    ][-40:]


async def answers(tap: EventTap, events: list[Any], within: float) -> list[Event]:
    return list(await asyncio.gather(*(tap.answer(e, within=within) for e in events)))


class Neighbour:
    """Another system spending the same SES account outside the budget, asking twice as
    often as the account's whole rate: the bucket is empty whenever the provisioner asks,
    bar the moments just after a refill. At the whole rate, the provisioner's paced calls
    could take each refill first for a whole test on a busy host, and never be throttled."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client: Any = botocore.session.get_session().create_client(
            "ses",
            region_name=REGION,
            endpoint_url=self._url,
            aws_access_key_id=TEST_ACCESS_KEY,
            aws_secret_access_key=TEST_ACCESS_KEY,
        )
        while not self._stop.wait(0.5 / RATE):
            with contextlib.suppress(ClientError):  # throttled: the neighbour does not care
                client.get_identity_dkim_attributes(Identities=["neighbour.example"])

    def __enter__(self) -> Neighbour:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def test_a_burst_of_creates_all_end_provisioned_within_the_rate(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    quota: SesQuotaSandbox,
    mail_server: MailServer,
) -> None:
    tap, publish = bus
    await stack.ready(start(stack, quota))
    burst = [
        requested(unique_domain(f"burst{i}")).model_copy(update={"team_id": f"team_{i % 3}"})
        for i in range(12)
    ]
    for event in burst:
        await publish(event)
    got = await answers(tap, burst, within=120)
    failed = [a for a in got if not isinstance(a, DomainProvisioned)]
    assert not failed, (failed, troubles(stack))
    for event in burst:
        assert await identity_exists(stack, event.domain)
        assert await mail_server.has_domain(event.domain)
    # SES saw each call once, throttled nothing but a stray late one, never over the rate.
    assert len(quota.calls(accepted=True)) == CALLS_PER_CREATE * len(burst)
    assert len(quota.calls(accepted=False)) <= len(burst) // 4, quota.per_second()
    assert quota.most_in_a_second(accepted=True) <= RATE + BURST - 1


async def test_throttling_by_another_spender_is_waited_out_and_a_rollback_completes(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    quota: SesQuotaSandbox,
    mail_server: MailServer,
) -> None:
    tap, publish = bus
    await stack.ready(start(stack, quota))
    good = [requested(unique_domain(f"busy{i}")) for i in range(5)]
    # SES refuses a MAIL FROM outside the domain: created identity, then a real refusal.
    bad_domain = unique_domain("refused")
    bad = requested(bad_domain, mail_from_domain="bounce.elsewhere.example")
    with Neighbour(quota.url):
        for event in [*good[:2], bad, *good[2:]]:
            await publish(event)
        got = await answers(tap, [*good, bad], within=180)
    *provisioned, rolled_back = got
    assert all(isinstance(a, DomainProvisioned) for a in provisioned), provisioned
    assert isinstance(rolled_back, ProvisioningRolledBack), rolled_back
    assert rolled_back.failed_step == "mail_from"
    # The provisioner's own calls were throttled (the neighbour spent their slots) and made
    # again; none of that was a failure, and the rollback undid the identity it made.
    ours = [c for c in quota.calls(accepted=False) if c.action != "GetIdentityDkimAttributes"]
    assert ours, quota.per_second()
    for event in good:
        assert await identity_exists(stack, event.domain)
        assert await mail_server.has_domain(event.domain)
        (row,) = await saga_rows(stack, event.domain_id)
        assert row["state"] == "completed"
    assert not await identity_exists(stack, bad_domain)
    assert not await mail_server.has_domain(bad_domain)


async def test_a_quiet_teams_create_is_served_ahead_of_another_teams_queued_burst(
    stack: Stack,
    bus: tuple[EventTap, Publish],
    quota: SesQuotaSandbox,
) -> None:
    # Six of the burst's sagas run at once, so six calls queue for every slot: a first-come
    # budget would make each of the quiet create's calls wait behind them all.
    tap, publish = bus
    await stack.ready(start(stack, quota, DOMAINFLOW_PROVISIONER_CONCURRENCY="6"))
    burst = [
        requested(unique_domain(f"queued{i}")).model_copy(update={"team_id": "team_busy"})
        for i in range(16)
    ]
    for event in burst:
        await publish(event)
    await answers(tap, burst[:3], within=120)  # the burst is under way, most of it queued
    quiet = requested(unique_domain("quiet")).model_copy(update={"team_id": "team_quiet"})
    asked_at = time.monotonic()  # the proxy stamps calls on the same (system-wide) clock
    await publish(quiet)
    answer = await tap.answer(quiet, within=60)
    assert isinstance(answer, DomainProvisioned), (answer, troubles(stack))
    calls = sorted(quota.calls(accepted=True), key=lambda c: c.at)
    mine = [i for i, c in enumerate(calls) if c.identity == quiet.domain]
    assert len(mine) == CALLS_PER_CREATE, [(c.action, c.identity) for c in calls]
    # Its first call went at most a few slots after it asked (the slot already booked, and
    # the time the request took to reach the provisioner), not behind the six queued calls;
    # its second took the next free slot.
    before = [c for c in calls[: mine[0]] if c.at >= asked_at]
    assert len(before) <= 3, [(round(c.at - asked_at, 2), c.identity) for c in before]
    between = mine[-1] - mine[0] - (len(mine) - 1)
    assert between <= 1, [(c.action, c.identity) for c in calls[mine[0] : mine[-1] + 1]]
    # The burst is not starved: it all ends provisioned.
    got = await answers(tap, burst, within=180)
    assert all(isinstance(a, DomainProvisioned) for a in got), troubles(stack)
