"""The saga runner against real PostgreSQL, with scripted stand-ins for the mail server and SES.

These cover what is hard to stage with the real outside systems: two replicas racing for
one saga, a lease stolen mid-run, a replica dead at an exact persisted state, and the
one-at-a-time rule for sagas of one domain name. Leases run out when a test moves them into
the past, and the lease keeper renews when the test ends its pause: nothing waits on time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from domainflow.contracts import (
    DeletionRequested,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainRequested,
    Event,
    ProvisioningRolledBack,
    SagaNeedsOperator,
)
from domainflow.kit.aws import SesError
from domainflow.kit.database import Database
from domainflow.kit.envelope import decode
from domainflow.kit.runtime import kit_migrations
from domainflow.kit.ses_budget import is_quiet_caller
from domainflow.provisioner.adapters import repository
from domainflow.provisioner.adapters.repository import Claimed, LeaseLostError, migrations
from domainflow.provisioner.domain import (
    ProvisioningSaga,
    SagaKind,
    SagaState,
    Step,
    StepStatus,
    step_started,
)
from domainflow.provisioner.handlers import SagaRunner
from domainflow.provisioner.settings import ProvisionerSettings

pytestmark = pytest.mark.integration

TOKENS = ["t1", "t2", "t3"]


@dataclass
class Scripted:
    """Outside systems that record calls and raise the scripted failures, in order."""

    domains: set[str] = field(default_factory=set)
    identities: set[str] = field(default_factory=set)
    mail_from: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # when given, calls wait for it (a slow SES)
    entered: asyncio.Event = field(default_factory=asyncio.Event)  # a call has begun
    #: Each call's domain, and whether the SES budget would rank it as a quiet team's.
    quiet_calls: dict[str, bool] = field(default_factory=dict)

    async def _call(self, name: str) -> None:
        self.calls.append(name)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)

    async def add_domain(self, domain: str, *, live: bool) -> None:
        self.quiet_calls[domain] = is_quiet_caller()  # the saga's first call
        await self._call("add_domain")
        self.domains.add(domain)

    async def remove_domain(self, domain: str) -> None:
        await self._call("remove_domain")
        self.domains.discard(domain)

    async def create_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> list[str]:
        self.quiet_calls[domain] = is_quiet_caller()
        await self._call("create_identity")
        self.identities.add(domain)
        return TOKENS

    async def set_mail_from(
        self, domain: str, mail_from_domain: str, region: str, *, account: str | None = None
    ) -> None:
        await self._call("set_mail_from")
        self.mail_from[domain] = mail_from_domain

    async def delete_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> None:
        await self._call("delete_identity")
        self.identities.discard(domain)
        self.mail_from.pop(domain, None)


def settings(**saga: float) -> ProvisionerSettings:
    values: dict[str, float] = {
        "step_attempts": 3,
        "step_backoff": 0.01,
        "step_backoff_max": 0.05,
        "step_timeout": 5,
        "lease_seconds": 1.0,
        "recovery_interval": 0.2,
        **saga,
    }
    return ProvisionerSettings(saga=values)


@pytest.fixture
async def db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    url = await database_url("provisioner_runner")
    database = await Database.prepare(url, [*kit_migrations(), *migrations()], size=6)
    yield database
    await database.close()


async def published(db: Database) -> list[Event]:
    async with db.transaction() as conn:
        rows = await conn.fetch("SELECT body FROM outbox ORDER BY id")
    return [decode(bytes(r["body"])) for r in rows]


async def lapse_leases(db: Database) -> None:
    """Every lease runs out now: moved into the past, rather than waited out."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE sagas SET leased_until = now() - interval '1 second'"
            " WHERE leased_until IS NOT NULL"
        )


class HeldPauses:
    """The lease keeper's pauses between renewals, each ended by the test."""

    def __init__(self) -> None:
        self._pausing: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        ended = asyncio.get_running_loop().create_future()
        await self._pausing.put(ended)
        await ended

    async def end_one(self) -> None:
        """Let the keeper renew once, and wait until it has (it is pausing again)."""
        (await asyncio.wait_for(self._pausing.get(), timeout=10)).set_result(None)
        next_pause = await asyncio.wait_for(self._pausing.get(), timeout=10)
        await self._pausing.put(next_pause)


def request(
    domain: str = "mail.acme.test", team_id: str = "team_1", **kw: str | None
) -> DomainRequested:
    return DomainRequested(
        correlation_id="req_1",
        team_id=team_id,
        domain_id=f"mdom_{uuid.uuid4().hex[:10]}",
        domain=domain,
        region="us-east-1",
        **kw,
    )


def delete(of: DomainRequested) -> DeletionRequested:
    return DeletionRequested(
        correlation_id="req_2",
        team_id=of.team_id,
        domain_id=of.domain_id,
        domain=of.domain,
        region=of.region,
    )


async def test_a_request_provisions_and_a_redelivery_changes_nothing(db: Database) -> None:
    world = Scripted()
    runner = SagaRunner(db, world, world, settings())
    event = request(mail_from_domain="bounce.mail.acme.test")
    await runner.on_domain_requested(event)
    await runner.on_domain_requested(event)  # redelivered
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, DomainProvisioned)
    assert answer.dkim_tokens == TOKENS
    assert answer.causation_id == event.event_id
    assert answer.correlation_id == event.correlation_id
    assert world.calls == ["add_domain", "create_identity", "set_mail_from"]
    async with db.transaction() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sagas") == 1


async def test_a_new_request_for_a_finished_saga_is_answered_again(db: Database) -> None:
    world = Scripted()
    runner = SagaRunner(db, world, world, settings())
    first = request()
    await runner.on_domain_requested(first)
    await runner.run_pending()
    again = first.model_copy(update={"event_id": uuid.uuid4(), "correlation_id": "req_again"})
    await runner.on_domain_requested(again)
    answers = await published(db)
    assert [type(a) for a in answers] == [DomainProvisioned, DomainProvisioned]
    assert answers[1].causation_id == again.event_id
    assert answers[1].correlation_id == "req_again"
    assert world.calls == ["add_domain", "create_identity"]  # no step ran twice


@pytest.mark.parametrize(
    ("code", "undone"),
    [
        ("Throttling", ["remove_domain"]),  # refused: SES has nothing to undo
        ("InternalFailure", ["delete_identity", "remove_domain"]),  # may have been created
    ],
)
async def test_ses_failing_rolls_back_the_mail_server(
    db: Database, code: str, undone: list[str]
) -> None:
    failure = SesError(code, "Rate exceeded", retryable=True)
    world = Scripted(failures={"create_identity": [failure] * 3})
    runner = SagaRunner(db, world, world, settings())
    await runner.on_domain_requested(request())
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, ProvisioningRolledBack)
    assert answer.failed_step == "ses_identity"
    assert code in answer.reason
    assert world.calls == ["add_domain", *["create_identity"] * 3, *undone]
    assert not world.domains
    assert not world.identities


async def test_a_non_retryable_ses_error_compensates_at_once(db: Database) -> None:
    failure = SesError("AccessDeniedException", "not allowed", retryable=False)
    world = Scripted(failures={"create_identity": [failure]})
    runner = SagaRunner(db, world, world, settings())
    await runner.on_domain_requested(request())
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, ProvisioningRolledBack)
    assert world.calls.count("create_identity") == 1
    assert not world.domains


async def test_two_replicas_never_run_one_saga_together(db: Database) -> None:
    world = Scripted(gate=asyncio.Event())
    pauses = HeldPauses()
    a = SagaRunner(db, world, world, settings(), renewal_pause=pauses)
    b = SagaRunner(db, world, world, settings())
    event = request()
    await a.on_domain_requested(event)
    first = asyncio.create_task(a.run_pending())
    await asyncio.wait_for(world.entered.wait(), timeout=10)
    async with db.transaction() as conn:
        found = await repository.find(conn, event.domain_id, SagaKind.PROVISION)
    assert found is not None
    # b can neither claim it directly nor through its recovery sweep while a holds it,
    assert await b.run_saga(found[0]) is None
    assert await b.dispatch_once() == 0
    # even past the original lease, because a renews it.
    await lapse_leases(db)
    await pauses.end_one()
    assert await b.run_saga(found[0]) is None
    assert await b.dispatch_once() == 0
    world.gate.set()  # type: ignore[union-attr]
    await first
    assert world.calls == ["add_domain", "create_identity"]
    assert len(await published(db)) == 1


async def test_a_dead_replicas_saga_is_finished_by_the_recovery_sweep(db: Database) -> None:
    world = Scripted()
    event = request()
    # A replica recorded the mail server step and SES intent, then died (lease left behind).
    async with db.transaction() as conn:
        saga_id = await repository.insert(conn, _saga_of(event))
        assert saga_id is not None
        claimed = await repository.claim(conn, saga_id, lease_seconds=60)
        assert claimed is not None
        saga = claimed.saga.with_status(Step.MAILSERVER, StepStatus.DONE)
        saga = step_started(saga, Step.SES_IDENTITY)
        await repository.save(conn, claimed, saga, lease_seconds=60)
    world.domains.add(event.domain)
    runner = SagaRunner(db, world, world, settings())
    assert await runner.dispatch_once() == 0  # still leased
    await lapse_leases(db)
    assert await runner.dispatch_once() == 1
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, DomainProvisioned)
    assert world.calls == ["create_identity"]  # the started step redone, nothing else


async def test_a_replica_that_lost_its_lease_stops(db: Database) -> None:
    world = Scripted(gate=asyncio.Event())
    runner = SagaRunner(db, world, world, settings())
    event = request()
    await runner.on_domain_requested(event)
    task = asyncio.create_task(runner.run_pending())
    await asyncio.wait_for(world.entered.wait(), timeout=10)
    async with db.transaction() as conn:  # another replica took over
        await conn.execute("UPDATE sagas SET lease_token = gen_random_uuid()")
    world.gate.set()  # type: ignore[union-attr]
    await task  # logs saga.lease_lost, does not raise
    async with db.transaction() as conn:
        steps = await conn.fetchval("SELECT steps FROM sagas")
    assert steps[0] == {"step": "mailserver", "status": "started"}  # outcome not written
    assert await published(db) == []
    assert world.calls == ["add_domain"]


async def test_deletion_waits_for_the_unfinished_provisioning(db: Database) -> None:
    world = Scripted()
    event = request()
    async with db.transaction() as conn:  # a provisioning held by a replica that then died
        saga_id = await repository.insert(conn, _saga_of(event))
        assert saga_id is not None
        await repository.claim(conn, saga_id, lease_seconds=60)
    runner = SagaRunner(db, world, world, settings())
    impostor = Claimed(saga_id, uuid.uuid4(), _saga_of(event))
    async with db.transaction() as conn:  # sanity: the lease is really someone else's
        with pytest.raises(LeaseLostError):
            await repository.save(conn, impostor, impostor.saga, lease_seconds=1)
    await runner.on_deletion_requested(delete(event))
    await runner.run_pending()
    assert world.calls == []  # its turn has not come
    assert await runner.dispatch_once() == 0  # nor the provisioning's, while its lease holds
    await lapse_leases(db)
    await runner.run_pending()
    answers = await published(db)
    assert [type(a) for a in answers] == [DomainProvisioned, DomainDeprovisioned]
    assert world.calls == ["add_domain", "create_identity", "delete_identity", "remove_domain"]
    assert not world.domains
    assert not world.identities
    async with db.transaction() as conn:
        states = await conn.fetch("SELECT kind, state FROM sagas ORDER BY id")
    assert [(r["kind"], r["state"]) for r in states] == [
        ("provision", SagaState.COMPLETED.value),
        ("deprovision", SagaState.COMPLETED.value),
    ]


async def test_deprovisioning_retries_until_ses_lets_it(db: Database) -> None:
    failures: list[BaseException] = [SesError("InternalFailure", "boom", retryable=True)] * 5
    world = Scripted(failures={"delete_identity": [*failures, OSError("reset")]})
    runner = SagaRunner(db, world, world, settings())
    event = request()
    await runner.on_domain_requested(event)
    await runner.on_deletion_requested(delete(event))
    await runner.run_pending()
    answers = await published(db)
    assert [type(a) for a in answers] == [DomainProvisioned, DomainDeprovisioned]
    assert world.calls.count("delete_identity") == 7
    assert not world.identities
    assert not world.domains


def _saga_of(event: DomainRequested) -> ProvisioningSaga:
    return ProvisioningSaga.start(
        kind=SagaKind.PROVISION,
        domain_id=event.domain_id,
        team_id=event.team_id,
        domain=event.domain,
        region=event.region,
        mail_from_domain=event.mail_from_domain,
        correlation_id=event.correlation_id,
        causation_id=event.event_id,
        max_attempts=3,
    )


async def test_an_identity_created_before_a_later_call_failed_is_undone(db: Database) -> None:
    # The step's first call (creating the identity) took effect, a later one (its DKIM
    # tokens) was refused: the refusal must not pass for "nothing happened".
    refusal = SesError("AccessDeniedException", "not allowed", retryable=False, took_effect=True)
    world = Scripted(failures={"create_identity": [refusal]})
    runner = SagaRunner(db, world, world, settings())
    await runner.on_domain_requested(request())
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, ProvisioningRolledBack)
    assert world.calls == ["add_domain", "create_identity", "delete_identity", "remove_domain"]


async def test_a_quiet_teams_create_is_not_queued_behind_another_teams_burst(
    db: Database,
) -> None:
    world = Scripted()
    runner = SagaRunner(db, world, world, settings(concurrency=1))
    burst = [request(f"d{i}.burst.test", team_id="team_burst") for i in range(6)]
    for event in burst:
        await runner.on_domain_requested(event)
    # Two of the burst are done before the quiet team asks.
    await runner.dispatch_once()
    await asyncio.gather(*runner._running)
    await runner.dispatch_once()
    await asyncio.gather(*runner._running)
    quiet = request("mail.quiet.test", team_id="team_quiet")
    more = request("d6.burst.test", team_id="team_burst")
    await runner.on_domain_requested(quiet)
    await runner.on_domain_requested(more)
    await runner.run_pending()
    added = [c for c in world.calls if c == "add_domain"]
    assert len(added) == 8
    order = [a.domain for a in await published(db) if isinstance(a, DomainProvisioned)]
    # The quiet team's single create goes next to the burst's next one, not after it all.
    assert order.index("mail.quiet.test") <= 3
    assert [d for d in order if d != "mail.quiet.test"] == [e.domain for e in [*burst, more]]


async def test_a_quiet_teams_saga_starts_at_once_beside_a_full_burst_and_calls_ses_quietly(
    db: Database,
) -> None:
    # SES holds every call: the burst's sagas fill the replica's room and stay in it.
    gate = asyncio.Event()
    world = Scripted(gate=gate)
    runner = SagaRunner(db, world, world, settings(concurrency=2, quiet_room=1))
    for i in range(5):
        await runner.on_domain_requested(request(f"d{i}.burst.test", team_id="team_burst"))
    assert await runner.dispatch_once() == 2  # the room is full; three wait their turn
    assert await runner.dispatch_once() == 0
    quiet = request("mail.quiet.test", team_id="team_quiet")
    await runner.on_domain_requested(quiet)
    another = request("mail.other.test", team_id="team_other")
    await runner.on_domain_requested(another)
    # The quiet team's saga starts now, in the quiet room, without waiting for the burst;
    # the room holds one, so the next quiet team waits for a place like anyone.
    assert await runner.dispatch_once() == 1

    async def quiet_saga_calls() -> None:
        while len(world.quiet_calls) < 3:  # noqa: ASYNC110 - the three sagas' own pace
            await asyncio.sleep(0.01)

    await asyncio.wait_for(quiet_saga_calls(), timeout=10)
    assert world.quiet_calls == {
        "d0.burst.test": False,
        "d1.burst.test": False,
        "mail.quiet.test": True,  # ranked ahead of the burst's calls in the SES budget
    }
    gate.set()
    await runner.run_pending()
    order = [a.domain for a in await published(db) if isinstance(a, DomainProvisioned)]
    assert len(order) == 7
    assert world.quiet_calls["mail.other.test"] is True


async def test_without_a_quiet_room_a_quiet_teams_saga_waits_for_a_place(db: Database) -> None:
    gate = asyncio.Event()
    world = Scripted(gate=gate)
    runner = SagaRunner(db, world, world, settings(concurrency=2, quiet_room=0))
    for i in range(3):
        await runner.on_domain_requested(request(f"d{i}.burst.test", team_id="team_burst"))
    assert await runner.dispatch_once() == 2
    await runner.on_domain_requested(request("mail.quiet.test", team_id="team_quiet"))
    assert await runner.dispatch_once() == 0
    gate.set()
    await runner.run_pending()
    assert len(world.quiet_calls) == 4


# --- a saga that cannot go on stops for an operator -------------------------------------------

#: What aiohttp raises for a region with a newline in it: no wait mends it.
_BAD_HEADER = ValueError("Newline or carriage return character detected in HTTP status message")


async def _states(db: Database) -> list[tuple[str, str, str | None, str | None]]:
    async with db.transaction() as conn:
        rows = await conn.fetch(
            "SELECT kind, state, failed_step, error_class FROM sagas ORDER BY id"
        )
    return [(r["kind"], r["state"], r["failed_step"], r["error_class"]) for r in rows]


async def test_an_undo_that_keeps_failing_for_no_outage_stops_for_an_operator(
    db: Database,
) -> None:
    refusal = SesError(
        "InvalidParameterValue", "arn:aws:ses:us-east-1:123456789012", retryable=False
    )
    world = Scripted(failures={"create_identity": [refusal], "remove_domain": [_BAD_HEADER] * 50})
    runner = SagaRunner(db, world, world, settings(undo_attempts=3))
    event = request()
    await runner.on_domain_requested(event)
    await runner.run_pending()  # returns: the saga stopped instead of retrying for ever

    assert world.calls == ["add_domain", "create_identity", *["remove_domain"] * 3]
    (stopped,) = await published(db)
    assert isinstance(stopped, SagaNeedsOperator)
    assert (stopped.domain_id, stopped.saga, stopped.step) == (
        event.domain_id,
        "provision",
        "mailserver",
    )
    assert stopped.error_class == "mailserver:unexpected:ValueError"
    assert "Newline" not in stopped.model_dump_json()
    assert await _states(db) == [
        ("provision", "needs_operator", "mailserver", "mailserver:unexpected:ValueError")
    ]
    await runner.run_pending()
    assert world.calls.count("remove_domain") == 3  # nobody picks a stopped saga up again

    # The operator mends the cause and releases the domain: the removal runs at once (the
    # stopped saga holds no turn) and finishes.
    world.failures.clear()
    await runner.on_deletion_requested(delete(event))
    await runner.run_pending()
    assert isinstance((await published(db))[-1], DomainDeprovisioned)
    assert not world.domains
    assert not world.identities


async def test_a_removal_that_stopped_starts_again_when_the_domain_is_released(
    db: Database,
) -> None:
    world = Scripted(failures={"delete_identity": [_BAD_HEADER] * 2})
    runner = SagaRunner(db, world, world, settings(undo_attempts=2))
    event = request()
    await runner.on_domain_requested(event)
    await runner.on_deletion_requested(delete(event))
    await runner.run_pending()
    answers = await published(db)
    assert [a.TYPE for a in answers] == ["domain.provisioned", "domain.needs_operator"]
    stopped = answers[1]
    assert isinstance(stopped, SagaNeedsOperator)
    assert stopped.step == "ses_identity"
    assert await _states(db) == [
        ("provision", "completed", None, None),
        ("deprovision", "needs_operator", "ses_identity", "ses:unexpected:ValueError"),
    ]

    released = delete(event).model_copy(update={"event_id": uuid.uuid4(), "correlation_id": "op_1"})
    await runner.on_deletion_requested(released)
    await runner.run_pending()
    assert isinstance((await published(db))[-1], DomainDeprovisioned)
    assert [s[:2] for s in await _states(db)] == [
        ("provision", "completed"),
        ("deprovision", "completed"),
    ]
    assert not world.identities
    assert not world.domains


async def test_an_outage_in_an_undo_is_waited_out_past_the_bound(db: Database) -> None:
    refusal = SesError("AccessDenied", "no", retryable=False)
    world = Scripted(
        failures={"create_identity": [refusal], "remove_domain": [OSError("reset")] * 6}
    )
    runner = SagaRunner(db, world, world, settings(undo_attempts=2))
    await runner.on_domain_requested(request())
    await runner.run_pending()
    (answer,) = await published(db)
    assert isinstance(answer, ProvisioningRolledBack)
    assert world.calls.count("remove_domain") == 7
    assert not world.domains


async def test_a_name_provisioned_again_since_its_release_is_not_removed(db: Database) -> None:
    # The first holder's saga stopped; an operator released the name and another team added
    # it before the provisioner heard of the release: the removal must not take the new
    # holder's identity away.
    world = Scripted(
        failures={
            "remove_domain": [_BAD_HEADER] * 5,
            "create_identity": [SesError("AccessDenied", "no", retryable=False)],
        }
    )
    runner = SagaRunner(db, world, world, settings(undo_attempts=1))
    first = request(domain="held.acme.test")
    await runner.on_domain_requested(first)
    await runner.run_pending()
    world.failures.clear()
    second = request(domain="held.acme.test", team_id="team_2")
    await runner.on_domain_requested(second)
    await runner.run_pending()
    await runner.on_deletion_requested(delete(first))
    await runner.run_pending()
    answers = await published(db)
    assert [type(a) for a in answers] == [SagaNeedsOperator, DomainProvisioned, DomainDeprovisioned]
    assert answers[2].domain_id == first.domain_id  # type: ignore[attr-defined]
    assert "held.acme.test" in world.identities
    assert "held.acme.test" in world.domains
    assert world.calls.count("delete_identity") == 0
