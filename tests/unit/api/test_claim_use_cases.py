"""Claims over the in-memory unit of work: the use case, the verifier's answer, the handover."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from domainflow.api.claims.service import ClaimService
from domainflow.api.domain.claims import ClaimVerdict
from domainflow.api.domain.errors import (
    ClaimRefused,
    DomainExists,
    IdempotencyKeyReused,
    NothingToClaim,
    RateLimited,
)
from domainflow.api.domain.keys import Principal
from domainflow.api.domains.service import AddDomain, DomainService
from domainflow.api.handlers import ApiHandlers
from domainflow.api.http.problems import problem_of
from domainflow.api.mailboxes.service import MailboxService
from domainflow.api.settings import ApiSettings
from domainflow.contracts import (
    ChangeReason,
    CheckOutcome,
    ClaimChecked,
    ClaimRequested,
    DeletionRequested,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainRequested,
    DomainStatus,
    DomainStatusChanged,
    NotificationRequested,
    RecordCheck,
    RecordKind,
)
from domainflow.kit.settings import SesAccount, SesSettings
from tests.unit.api.fakes import FakeChanges, FakeUnitOfWork

ACME = Principal(1, "team_acme", "key_acme", ("*",))
GLOBEX = Principal(2, "team_globex", "key_globex", ("*",))
SETTINGS = ApiSettings(write_limit={"domain_write_rate": 0.0})


class World:
    """The api with the verifier and provisioner played by hand: the DNS shows `published`."""

    def __init__(self, settings: ApiSettings = SETTINGS) -> None:
        self.uow = FakeUnitOfWork()
        self.changes = FakeChanges()
        self.domains = DomainService(self.uow, settings, self.changes)
        self.claims = ClaimService(self.uow, settings, self.changes, self.domains)
        self.handlers = ApiHandlers(self.uow, settings)
        self.published: set[str] = set()
        self.changes.meanwhile = self._meanwhile

    async def teams(self) -> None:
        async with self.uow.transaction() as work:
            acme = await work.teams.add("team_acme", "acme")
            await work.teams.set_member(acme, "owner@acme.com", "owner")
            await work.teams.add("team_globex", "globex")

    async def held_by_acme(self, *, proven: bool = False) -> str:
        self.changes.meanwhile = None
        added = await self.domains.add(ACME, AddDomain("acme.com"), "req_add")
        await self.handlers.on_provisioned(
            DomainProvisioned(
                correlation_id="req_add",
                team_id="team_acme",
                domain_id=added.domain.public_id,
                domain="acme.com",
                region="us-east-1",
                dkim_tokens=["a" * 32, "b" * 32, "c" * 32],
            )
        )
        if proven:
            self.uow.state.domains[added.domain.public_id].ownership_proven_at = datetime.now(UTC)
        self.changes.meanwhile = self._meanwhile
        return added.domain.public_id

    def _check(self, record: object) -> RecordCheck:
        name, value = record.name, record.value  # type: ignore[attr-defined]
        seen = value in self.published
        return RecordCheck(
            record=RecordKind.VERIFICATION_TXT,
            outcome=CheckOutcome.PASS if seen else CheckOutcome.FAIL,
            name=name,
            expected=value,
            found=sorted(self.published),
            reason=None if seen else "record_missing",
        )

    async def _meanwhile(self, _: str) -> None:
        """The verifier answers every claim asked; the provisioner every deletion."""
        for event in list(self.uow.state.published):
            if isinstance(event, ClaimRequested):
                await self.handlers.on_claim_checked(
                    ClaimChecked(
                        correlation_id=event.correlation_id,
                        causation_id=event.event_id,
                        team_id=event.team_id,
                        claim_id=event.claim_id,
                        domain_id=event.domain_id,
                        domain=event.domain,
                        claimant=self._check(event.claimant),
                        holder=self._check(event.holder),
                        checked_at=datetime.now(UTC),
                    )
                )
        for event in list(self.uow.state.published):
            if isinstance(event, DeletionRequested):
                await self.handlers.on_deprovisioned(
                    DomainDeprovisioned(
                        correlation_id=event.correlation_id,
                        causation_id=event.event_id,
                        team_id=event.team_id,
                        domain_id=event.domain_id,
                        domain=event.domain,
                    )
                )


@pytest.fixture
async def world() -> World:
    w = World()
    await w.teams()
    return w


async def test_a_claim_on_an_unproven_holder_moves_the_name_to_the_claimant(world: World) -> None:
    held = await world.held_by_acme()
    world.published = {"sendmux-verify=team_globex"}
    claim = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")

    assert claim.domain_public_id is not None
    assert claim.released_domain_id == held
    old, new = world.uow.state.domains[held], world.uow.state.domains[claim.domain_public_id]
    assert old.status is DomainStatus.DELETED
    assert (new.team_pk, new.name, new.status) == (2, "acme.com", DomainStatus.PROVISIONING)
    # The claimant's domain is provisioned afresh: a new SES identity, new DKIM tokens.
    asked = [e for e in world.uow.state.published if isinstance(e, DomainRequested)]
    assert [e.domain_id for e in asked] == [held, new.public_id]
    # The holder's owners are told once, with the reason; both timelines show the claim.
    told = [
        e
        for e in world.uow.state.published
        if isinstance(e, NotificationRequested) and e.domain_id == held
    ]
    assert [(e.new_status, e.reason_code, e.owner_emails) for e in told] == [
        (DomainStatus.DELETING, ChangeReason.CLAIMED, ["owner@acme.com"])
    ]
    lines = world.uow.state.timeline
    assert [e.happening for pk, e in lines if pk == old.pk].count("claimed") == 1
    assert [e.happening for pk, e in lines if pk == new.pk].count("claimed") == 1
    # The claim names no team: not the holder's id, nor its team.
    assert "team_acme" not in (claim.reason or "")


async def test_a_claim_against_a_proven_holder_whose_txt_is_up_is_refused(world: World) -> None:
    held = await world.held_by_acme(proven=True)
    world.published = {"sendmux-verify=team_globex", "sendmux-verify=team_acme"}
    with pytest.raises(ClaimRefused) as refused:
        await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert refused.value.verdict == "holder_proven"
    assert "DNS" in refused.value.message
    assert world.uow.state.domains[held].status is DomainStatus.PENDING


async def test_a_proven_holder_whose_txt_is_gone_loses_the_name(world: World) -> None:
    held = await world.held_by_acme(proven=True)
    world.published = {"sendmux-verify=team_globex"}
    claim = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert claim.domain_public_id is not None
    assert world.uow.state.domains[held].status is DomainStatus.DELETED


async def test_a_claim_without_the_claimants_txt_is_refused_with_the_expected_record(
    world: World,
) -> None:
    held = await world.held_by_acme()
    world.published = {"sendmux-verify=team_acme"}
    with pytest.raises(ClaimRefused) as refused:
        await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert refused.value.verdict == "txt_missing"
    assert refused.value.expected_record == {
        "type": "TXT",
        "name": "_sendmux.acme.com",
        "value": "sendmux-verify=team_globex",
    }
    assert world.uow.state.domains[held].status is DomainStatus.PENDING


async def test_a_claim_on_a_name_with_the_holders_mailboxes_waits_for_them(world: World) -> None:
    held = await world.held_by_acme()
    holder = world.uow.state.domains[held]
    async with world.uow.transaction() as work:
        await work.mailboxes.add(
            public_id="mbx_1", team_id=1, domain_id=holder.pk, address="ceo@acme.com"
        )
    world.published = {"sendmux-verify=team_globex"}
    claim = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert (claim.verdict, claim.active_mailboxes) == (ClaimVerdict.WAITS_FOR_MAILBOXES, 1)
    assert claim.reason is not None
    assert "mailbox" in claim.reason
    assert claim.domain_public_id is None
    assert world.uow.state.domains[held].status is DomainStatus.PENDING

    # The holder removes its last mailbox: the claim is checked again and goes on.
    mailboxes = MailboxService(world.uow, SETTINGS)
    await mailboxes.delete(ACME, "mbx_1")
    await world._meanwhile(claim.public_id)
    done = world.uow.state.claims[claim.public_id]
    assert done.verdict is ClaimVerdict.GRANTED
    assert done.domain_public_id is not None
    assert world.uow.state.domains[held].status is DomainStatus.DELETED
    asked = [e for e in world.uow.state.published if isinstance(e, ClaimRequested)]
    assert len(asked) == 2


async def test_only_another_teams_held_name_is_claimed(world: World) -> None:
    with pytest.raises(NothingToClaim):
        await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    held = await world.held_by_acme()
    with pytest.raises(DomainExists) as own:
        await world.claims.claim(ACME, AddDomain("acme.com"), "req_claim")
    assert own.value.own_id == held


async def test_a_claim_with_an_idempotency_key_is_made_once(world: World) -> None:
    await world.held_by_acme()
    world.published = {"sendmux-verify=team_globex"}
    first = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "r1", "key-1")
    again = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "r2", "key-1")
    assert again.public_id == first.public_id
    assert again.domain_public_id == first.domain_public_id
    assert len([e for e in world.uow.state.published if isinstance(e, ClaimRequested)]) == 1
    with pytest.raises(IdempotencyKeyReused):
        await world.claims.claim(GLOBEX, AddDomain("acme.com", region="eu-west-1"), "r3", "key-1")


async def test_claims_spend_the_teams_budget_of_domain_writes_like_creates() -> None:
    uow = FakeUnitOfWork(clock=lambda: 100.0)  # time stands still: nothing is refilled
    settings = ApiSettings(write_limit={"domain_write_rate": 1.0, "domain_write_burst": 1})
    domains = DomainService(uow, settings, FakeChanges())
    claims = ClaimService(uow, settings, FakeChanges(), domains)
    async with uow.transaction() as work:
        await work.teams.add("team_globex", "globex")
    with pytest.raises(NothingToClaim):
        await claims.claim(GLOBEX, AddDomain("acme.com"), "r1")
    with pytest.raises(RateLimited) as limited:
        await claims.claim(GLOBEX, AddDomain("acme.com"), "r2")
    assert limited.value.retry_after >= 1


async def test_a_claim_racing_the_holders_delete_ends_with_one_owner(world: World) -> None:
    held = await world.held_by_acme()
    world.published = {"sendmux-verify=team_globex"}
    answer_claims = world._meanwhile

    async def holder_deletes_first(public_id: str) -> None:
        # A's DELETE, and its deprovisioning, land between the claim's request and the
        # verifier's answer.
        world.changes.meanwhile = None
        await world.domains.delete(ACME, held, "req_delete")
        (gone,) = [e for e in world.uow.state.published if isinstance(e, DeletionRequested)]
        await world.handlers.on_deprovisioned(
            DomainDeprovisioned(
                correlation_id=gone.correlation_id,
                team_id=gone.team_id,
                domain_id=gone.domain_id,
                domain=gone.domain,
            )
        )
        world.changes.meanwhile = holder_deletes_first
        await answer_claims(public_id)

    world.changes.meanwhile = holder_deletes_first
    claim = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert claim.domain_public_id is not None
    assert claim.released_domain_id is None  # nothing left to release
    live = [d for d in world.uow.state.domains.values() if d.status is not DomainStatus.DELETED]
    assert [(d.team_pk, d.name) for d in live] == [(2, "acme.com")]
    # The holder's owners heard of its own deletion, not of a claim.
    assert not [
        e
        for e in world.uow.state.published
        if isinstance(e, DomainStatusChanged) and e.reason_code is ChangeReason.CLAIMED
    ]


async def test_a_name_that_changed_hands_while_it_was_looked_up_is_claimed_again(
    world: World,
) -> None:
    held = await world.held_by_acme()
    world.published = {"sendmux-verify=team_globex"}
    answer_claims = world._meanwhile
    initech = Principal(3, "team_initech", "key_initech", ("*",))
    async with world.uow.transaction() as work:
        await work.teams.add("team_initech", "initech")

    async def a_third_team_takes_it_first(public_id: str) -> None:
        world.changes.meanwhile = None
        await world.domains.delete(ACME, held, "req_delete")
        (gone,) = [e for e in world.uow.state.published if isinstance(e, DeletionRequested)]
        await world.handlers.on_deprovisioned(
            DomainDeprovisioned(
                correlation_id=gone.correlation_id,
                team_id=gone.team_id,
                domain_id=gone.domain_id,
                domain=gone.domain,
            )
        )
        await world.domains.add(initech, AddDomain("acme.com"), "req_initech")
        await answer_claims(public_id)

    world.changes.meanwhile = a_third_team_takes_it_first
    with pytest.raises(ClaimRefused) as refused:
        await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")
    assert refused.value.verdict == "inconclusive"
    assert "changed hands" in refused.value.message
    live = [d for d in world.uow.state.domains.values() if d.status is not DomainStatus.DELETED]
    assert [(d.team_pk, d.name) for d in live] == [(3, "acme.com")]  # one owner


def _one_identity_per_region() -> ApiSettings:
    """One SES account, serving two regions, with room for one domain in each."""
    return ApiSettings(
        write_limit={"domain_write_rate": 0.0},
        ses=SesSettings(
            accounts=[SesAccount(name="ses-1", regions=["us-east-1", "eu-west-1"], identity_cap=1)]
        ),
    )


async def test_a_claim_with_no_ses_room_in_its_region_leaves_the_holders_domain_alone() -> None:
    world = World(_one_identity_per_region())
    await world.teams()
    held = await world.held_by_acme()  # us-east-1's one identity
    world.changes.meanwhile = None
    await world.domains.add(GLOBEX, AddDomain("globex.com", region="eu-west-1"), "req_full")
    world.changes.meanwhile = world._meanwhile
    world.published = {"sendmux-verify=team_globex"}

    with pytest.raises(ClaimRefused) as refused:
        await world.claims.claim(GLOBEX, AddDomain("acme.com", region="eu-west-1"), "req_claim")

    assert (refused.value.verdict, refused.value.region) == ("no_ses_capacity", "eu-west-1")
    assert "room" in refused.value.message
    # Nothing was taken from the holder for a domain that could not be created.
    assert world.uow.state.domains[held].status is DomainStatus.PENDING
    assert not [e for e in world.uow.state.published if isinstance(e, DeletionRequested)]
    (claim,) = world.uow.state.claims.values()
    assert (claim.verdict, claim.domain_public_id) == (ClaimVerdict.NO_SES_CAPACITY, None)
    problem = problem_of(refused.value)
    assert (problem.status, problem.code) == (503, "service_unavailable")
    assert problem.details["reason"] == "ses_capacity_exhausted"
    assert problem.headers == {"Retry-After": "300"}


async def test_a_holder_in_the_claims_region_frees_by_its_release_the_room_the_claim_takes() -> (
    None
):
    world = World(_one_identity_per_region())
    await world.teams()
    held = await world.held_by_acme()  # the region's one identity
    world.published = {"sendmux-verify=team_globex"}

    claim = await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")

    assert claim.domain_public_id is not None
    assert world.uow.state.domains[held].status is DomainStatus.DELETED
    assert world.uow.state.domains[claim.domain_public_id].ses_account == "ses-1"


async def test_a_claim_whose_room_is_taken_while_the_holder_is_released_is_refused_not_parked() -> (
    None
):
    world = World(_one_identity_per_region())
    await world.teams()
    held = await world.held_by_acme()
    world.published = {"sendmux-verify=team_globex"}
    answer = world._meanwhile

    async def room_taken_before_the_handover(public_id: str) -> None:
        # The claim is granted and the holder's deletion asked for; before the provisioner
        # answers, the region's room goes to another domain (one an operator restored, say).
        world.changes.meanwhile = None
        async with world.uow.transaction() as work:
            other = replace(world.uow.state.domains[held], pk=0, public_id="mdom_x", name="x.io")
            await work.domains.add(other)
        await answer(public_id)

    world.changes.meanwhile = room_taken_before_the_handover
    with pytest.raises(ClaimRefused) as refused:
        await world.claims.claim(GLOBEX, AddDomain("acme.com"), "req_claim")

    assert refused.value.verdict == "no_ses_capacity"
    live = [d for d in world.uow.state.domains.values() if d.status is not DomainStatus.DELETED]
    assert [d.name for d in live] == ["x.io"]  # the name is free; nothing half-made
    (claim,) = world.uow.state.claims.values()
    assert claim.released_domain_id == held
    assert claim.domain_public_id is None
