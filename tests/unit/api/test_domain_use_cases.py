"""The domain use cases over the in-memory unit of work: every success and every refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domainflow.api.domain.errors import (
    DomainBusy,
    DomainExists,
    DomainInUse,
    DomainNotFound,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidDomainInput,
    InvalidIdempotencyKey,
    InvalidRequest,
    ProvisioningFailed,
    RateLimited,
    StaleVersion,
    UnsupportedChange,
)
from domainflow.api.domain.keys import Principal
from domainflow.api.domains.service import AddDomain, ChangeDomain, DomainService
from domainflow.api.settings import (
    ApiSettings,
    NameSettings,
    RegionSettings,
    WaitSettings,
    WriteLimitSettings,
)
from domainflow.contracts import (
    ChangeTrigger,
    DeletionRequested,
    DomainCreated,
    DomainMode,
    DomainRequested,
    DomainStatus,
    DomainStatusChanged,
    DomainStatusChangedV1,
    ReceivingRequested,
    VerifyRequested,
)
from tests.unit.api.fakes import FakeChanges, FakeUnitOfWork

ACME = Principal(1, "team_acme", "key_acme", ("*",))
GLOBEX = Principal(2, "team_globex", "key_globex", ("*",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow(clock: Clock) -> FakeUnitOfWork:
    return FakeUnitOfWork(clock)


@pytest.fixture
def changes() -> FakeChanges:
    return FakeChanges()


def service(uow: FakeUnitOfWork, changes: FakeChanges, **groups: Any) -> DomainService:
    chosen: dict[str, Any] = {"write_limit": WriteLimitSettings(domain_write_rate=0.0), **groups}
    return DomainService(uow, ApiSettings(**chosen), changes)


@pytest.fixture
def domains(uow: FakeUnitOfWork, changes: FakeChanges) -> DomainService:
    return service(uow, changes)


def provisioned_by(uow: FakeUnitOfWork, status: DomainStatus) -> Any:
    """What the provisioner does while a request waits: the domain leaves `provisioning`."""

    async def act(public_id: str) -> None:
        uow.state.domains[public_id].status = status

    return act


def set_status(uow: FakeUnitOfWork, public_id: str, status: DomainStatus) -> None:
    uow.state.domains[public_id].status = status


# --- add ---------------------------------------------------------------------------------------


async def test_add_writes_the_domain_its_timeline_and_its_request_together(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    added = await domains.add(ACME, AddDomain("mail.acme.com", region="eu-west-1"), "req_1")
    assert not added.settled  # nothing provisioned it within the wait
    assert (added.domain.name, added.domain.status) == ("mail.acme.com", DomainStatus.PROVISIONING)
    assert added.domain.public_id.startswith("mdom_")
    created, event = uow.state.published
    assert isinstance(created, DomainCreated)
    assert (created.sequence, created.trigger) == (1, ChangeTrigger.REQUEST)
    assert created.snapshot.state is DomainStatus.PROVISIONING
    assert "owner" not in created.model_dump_json()  # no personal data in public events
    assert isinstance(event, DomainRequested)
    assert (event.domain, event.region, event.correlation_id) == (
        "mail.acme.com",
        "eu-west-1",
        "req_1",
    )
    [(_, line)] = uow.state.timeline
    assert (line.happening, line.reason) == ("requested", "added in eu-west-1")


async def test_add_is_settled_once_provisioning_ends_within_the_wait(
    domains: DomainService, uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    changes.meanwhile = provisioned_by(uow, DomainStatus.PENDING)
    added = await domains.add(ACME, AddDomain("mail.acme.com"), "req_1")
    assert added.settled
    assert added.domain.status is DomainStatus.PENDING


async def test_add_reports_a_rolled_back_provisioning(
    domains: DomainService, uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    async def rolled_back(public_id: str) -> None:
        uow.state.domains[public_id].status = DomainStatus.DELETED
        uow.state.domains[public_id].failure_reason = "ses_identity: refused"

    changes.meanwhile = rolled_back
    with pytest.raises(ProvisioningFailed) as failed:
        await domains.add(ACME, AddDomain("mail.acme.com"), "req_1")
    assert failed.value.cause == "ses_identity: refused"


@pytest.mark.parametrize(
    ("command", "reason", "field"),
    [
        (AddDomain("https://acme.com"), "domain_has_scheme", "domain"),
        (AddDomain(None), "domain_missing", "domain"),
        (AddDomain("team.myagent.mx"), "domain_reserved", "domain"),
        (AddDomain("acme.com", region="mars-north-1x"), "region_invalid", "region"),
        (AddDomain("acme.com", region="us-east-1\n"), "region_invalid", "region"),
        (AddDomain("acme.com", external_id=""), "external_id_invalid", "external_id"),
        (AddDomain("acme.com", external_id="x" * 256), "external_id_invalid", "external_id"),
        (AddDomain("acme.com", metadata={"k": "v" * 9000}), "metadata_too_large", "metadata"),
        (AddDomain("acme.com", mail_from="bad label"), "mail_from_invalid", "mail_from"),
    ],
)
async def test_add_refuses_bad_input_and_writes_nothing(
    domains: DomainService, uow: FakeUnitOfWork, command: AddDomain, reason: str, field: str
) -> None:
    with pytest.raises(InvalidDomainInput) as refused:
        await domains.add(ACME, command, "req_1")
    assert (refused.value.reason, refused.value.field) == (reason, field)
    assert uow.state.domains == {}
    assert uow.state.published == []


async def test_add_offers_only_the_configured_regions(
    uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    domains = service(uow, changes, regions=RegionSettings(allowed=["eu-west-1"]))
    with pytest.raises(InvalidDomainInput) as refused:
        await domains.add(ACME, AddDomain("acme.com", region="us-east-1"), "req_1")
    assert refused.value.reason == "region_not_offered"
    assert (await domains.add(ACME, AddDomain("acme.com", region="eu-west-1"), "r")).domain


async def test_a_held_name_is_refused_saying_whose_it_is(domains: DomainService) -> None:
    first = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    with pytest.raises(DomainExists) as own:
        await domains.add(ACME, AddDomain("acme.com"), "req_2")
    assert own.value.own_id == first.domain.public_id
    with pytest.raises(DomainExists) as other:
        await domains.add(GLOBEX, AddDomain("acme.com"), "req_3")
    assert other.value.own_id is None  # another team's id is never shown
    # It says how the other team claims the name: its own TXT value, and where to claim.
    claim = other.value.claim
    assert claim is not None
    assert (claim.txt_name, claim.txt_value) == (
        "_sendmux.acme.com",
        f"sendmux-verify={GLOBEX.team_public_id}",
    )
    assert claim.endpoint == "/api/v1/domains/claims"
    assert ACME.team_public_id not in other.value.message
    assert claim.txt_value in other.value.message


async def test_an_idempotency_key_replays_the_first_answer(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    first = await domains.add(ACME, AddDomain("acme.com"), "req_1", "key-1")
    again = await domains.add(ACME, AddDomain("acme.com"), "req_2", "key-1")
    assert again.domain.public_id == first.domain.public_id
    assert len(uow.state.published) == 2  # domain.created and one request, not two
    with pytest.raises(IdempotencyKeyReused) as reused:
        await domains.add(ACME, AddDomain("other.com"), "req_3", "key-1")
    assert reused.value.domain_id == first.domain.public_id
    # Keys are the team's own: another team's same key is a new request.
    other = await domains.add(GLOBEX, AddDomain("globex.com"), "req_4", "key-1")
    assert other.domain.public_id != first.domain.public_id


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\t", "newline\n", "é"])
async def test_a_malformed_idempotency_key_is_refused(domains: DomainService, key: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        await domains.add(ACME, AddDomain("acme.com"), "req_1", key)


async def test_past_the_team_budget_writes_are_refused_with_the_wait(
    uow: FakeUnitOfWork, changes: FakeChanges, clock: Clock
) -> None:
    domains = service(
        uow, changes, write_limit=WriteLimitSettings(domain_write_rate=0.5, domain_write_burst=2)
    )
    await domains.add(ACME, AddDomain("a.acme.com"), "r1")
    await domains.add(ACME, AddDomain("b.acme.com"), "r2")
    with pytest.raises(RateLimited) as limited:
        await domains.add(ACME, AddDomain("c.acme.com"), "r3")
    assert limited.value.retry_after == 2
    assert (await domains.add(GLOBEX, AddDomain("globex.com"), "r4")).domain  # its own budget
    clock.now += 2
    assert (await domains.add(ACME, AddDomain("c.acme.com"), "r5")).domain


# --- reads -------------------------------------------------------------------------------------


async def test_get_shows_only_the_teams_own_domains(domains: DomainService) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    assert (await domains.get(ACME, added.domain.public_id)).name == "acme.com"
    with pytest.raises(DomainNotFound):
        await domains.get(GLOBEX, added.domain.public_id)
    with pytest.raises(DomainNotFound):
        await domains.get(ACME, "mdom_nothing")


async def test_list_pages_filters_and_refuses_what_it_cannot_read(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    ids = [
        (await domains.add(ACME, AddDomain(f"d{i}.acme.com"), "r")).domain.public_id
        for i in range(5)
    ]
    set_status(uow, ids[1], DomainStatus.VERIFIED)
    newest_first = ids[::-1]
    first = await domains.list(ACME, None, 2, None)
    assert [d.public_id for d in first.items] == newest_first[:2]
    assert first.has_more
    assert first.next_cursor is not None
    assert str(uow.state.domains[ids[3]].pk) not in first.next_cursor  # no row ids shown
    rest = await domains.list(ACME, first.next_cursor, 10, None)
    assert [d.public_id for d in rest.items] == newest_first[2:]
    assert (rest.has_more, rest.next_cursor) == (False, None)
    verified = await domains.list(ACME, None, 10, "verified")
    assert [d.public_id for d in verified.items] == [ids[1]]
    with pytest.raises(InvalidRequest) as unknown:
        await domains.list(ACME, None, 10, "verified,lost")
    assert unknown.value.field == "status"
    with pytest.raises(InvalidCursor):
        await domains.list(ACME, "not-a-cursor", 10, None)
    with pytest.raises(InvalidCursor):  # another team's cursor continues nothing here
        await domains.list(GLOBEX, first.next_cursor, 10, None)


async def test_the_timeline_reads_newest_first(domains: DomainService, uow: FakeUnitOfWork) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    set_status(uow, added.domain.public_id, DomainStatus.PENDING)
    await domains.delete(ACME, added.domain.public_id, "req_2")
    page = await domains.timeline(ACME, added.domain.public_id, None, 10)
    assert [e.happening for e in page.items] == ["deletion_requested", "requested"]
    with pytest.raises(DomainNotFound):
        await domains.timeline(GLOBEX, added.domain.public_id, None, 10)


# --- verify ------------------------------------------------------------------------------------


async def test_verify_asks_once_and_waits_for_the_answer(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    set_status(uow, added.domain.public_id, DomainStatus.PENDING)
    waiting = await domains.verify(ACME, added.domain.public_id, "req_2")
    assert waiting.verification_in_progress  # no verifier answered in the wait
    again = await domains.verify(ACME, added.domain.public_id, "req_3")
    assert again.verify_event_id == waiting.verify_event_id
    requests = [e for e in uow.state.published if isinstance(e, VerifyRequested)]
    assert len(requests) == 1  # one verification at a time per domain
    assert requests[0].records.verification.value == "sendmux-verify=team_acme"


async def test_a_lost_verification_may_be_asked_again(
    uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    domains = service(uow, changes, waits=WaitSettings(verify_stale_seconds=60))
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    public_id = added.domain.public_id
    set_status(uow, public_id, DomainStatus.PENDING)
    await domains.verify(ACME, public_id, "req_2")
    uow.state.domains[public_id].verify_requested_at = datetime(2020, 1, 1, tzinfo=UTC)
    await domains.verify(ACME, public_id, "req_3")
    assert sum(isinstance(e, VerifyRequested) for e in uow.state.published) == 2


@pytest.mark.parametrize("status", [DomainStatus.PROVISIONING, DomainStatus.DELETING])
async def test_verify_waits_for_provisioning_and_refuses_a_deleting_domain(
    domains: DomainService, uow: FakeUnitOfWork, status: DomainStatus
) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    set_status(uow, added.domain.public_id, status)
    with pytest.raises(DomainBusy) as busy:
        await domains.verify(ACME, added.domain.public_id, "req_2")
    assert busy.value.status is status
    with pytest.raises(DomainNotFound):
        await domains.verify(GLOBEX, added.domain.public_id, "req_3")


# --- delete ------------------------------------------------------------------------------------


async def test_delete_moves_to_deleting_and_asks_the_provisioner(
    domains: DomainService, uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    public_id = added.domain.public_id
    set_status(uow, public_id, DomainStatus.VERIFIED)
    deletion = await domains.delete(ACME, public_id, "req_2")
    assert (deletion.done, deletion.domain.status) == (False, DomainStatus.DELETING)
    changed, beside, asked = uow.state.published[-3:]
    assert isinstance(changed, DomainStatusChanged)
    assert isinstance(beside, DomainStatusChangedV1)  # version 1, for one release
    assert beside.sequence == changed.sequence
    assert (changed.old_status, changed.new_status) == (
        DomainStatus.VERIFIED,
        DomainStatus.DELETING,
    )
    assert isinstance(asked, DeletionRequested)
    # A repeated DELETE joins the first; once deprovisioned it is done.
    changes.meanwhile = provisioned_by(uow, DomainStatus.DELETED)
    repeated = await domains.delete(ACME, public_id, "req_3")
    assert repeated.done
    assert len(uow.state.published) == 5


async def test_delete_refuses_while_mailboxes_live_or_provisioning_runs(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    added = await domains.add(ACME, AddDomain("acme.com"), "req_1")
    public_id = added.domain.public_id
    with pytest.raises(DomainBusy):
        await domains.delete(ACME, public_id, "req_2")
    set_status(uow, public_id, DomainStatus.VERIFIED)
    async with uow.transaction() as work:
        await work.mailboxes.add(
            public_id="mbx_1", team_id=ACME.team_pk, domain_id=added.domain.pk, address="a@acme.com"
        )
    with pytest.raises(DomainInUse) as in_use:
        await domains.delete(ACME, public_id, "req_3")
    assert in_use.value.active_mailboxes == 1
    assert uow.state.domains[public_id].status is DomainStatus.VERIFIED  # nothing changed
    with pytest.raises(DomainNotFound):
        await domains.delete(GLOBEX, public_id, "req_4")


async def test_a_refused_request_leaves_no_trace(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    await domains.add(ACME, AddDomain("acme.com"), "req_1")
    before = (len(uow.state.published), len(uow.state.timeline), uow.commits)
    with pytest.raises(DomainExists):
        await domains.add(ACME, AddDomain("acme.com"), "req_2", str(uuid.uuid4()))
    assert (len(uow.state.published), len(uow.state.timeline)) == before[:2]
    assert uow.state.remembered == {}


async def test_every_domain_gets_a_mail_from_and_a_mode(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    plain = await domains.add(ACME, AddDomain("acme.com"), "r1")
    assert plain.domain.mail_from_domain == "send.acme.com"
    assert plain.domain.mode is DomainMode.SEND_RECEIVE
    own = await domains.add(
        GLOBEX, AddDomain("globex.com", mail_from="bounce", mode="send_only"), "r2"
    )
    assert (own.domain.mail_from_domain, own.domain.mode) == (
        "bounce.globex.com",
        DomainMode.SEND_ONLY,
    )
    requested = [e for e in uow.state.published if isinstance(e, DomainRequested)]
    assert [(e.mail_from_domain, e.mode) for e in requested] == [
        ("send.acme.com", DomainMode.SEND_RECEIVE),
        ("bounce.globex.com", DomainMode.SEND_ONLY),
    ]
    records = domains.records(own.domain)
    assert records.mail_from is not None
    assert records.mail_from.mx.target == "feedback-smtp.us-east-1.amazonses.com"
    with pytest.raises(InvalidDomainInput) as bad:
        await domains.add(ACME, AddDomain("other.com", mode="receive_only"), "r3")
    assert (bad.value.reason, bad.value.field) == ("mode_invalid", "mode")


# --- change (a send-only domain's upgrade) ------------------------------------------------------


async def send_only_domain(
    domains: DomainService, uow: FakeUnitOfWork, status: DomainStatus
) -> str:
    added = await domains.add(ACME, AddDomain("acme.com", mode="send_only"), "req_1")
    set_status(uow, added.domain.public_id, status)
    return added.domain.public_id


async def test_an_upgrade_of_an_unproven_domain_waits_for_its_proof_to_go_live(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    public_id = await send_only_domain(domains, uow, DomainStatus.PENDING)
    changed = await domains.change(ACME, public_id, ChangeDomain({"mode": "send_receive"}), "r2")
    assert (changed.mode, changed.status) == (DomainMode.SEND_RECEIVE, DomainStatus.PENDING)
    assert not [e for e in uow.state.published if isinstance(e, ReceivingRequested)]


async def test_an_upgrade_puts_the_domain_on_the_mail_server_and_back_to_pending(
    domains: DomainService, uow: FakeUnitOfWork
) -> None:
    public_id = await send_only_domain(domains, uow, DomainStatus.VERIFIED)
    uow.state.domains[public_id].ownership_proven_at = datetime.now(UTC)  # verified: proven
    changed = await domains.change(ACME, public_id, ChangeDomain({"mode": "send_receive"}), "r2")
    assert (changed.mode, changed.status) == (DomainMode.SEND_RECEIVE, DomainStatus.PENDING)
    asked = [e for e in uow.state.published if isinstance(e, ReceivingRequested)]
    assert [e.domain for e in asked] == ["acme.com"]
    moved = [e for e in uow.state.published if isinstance(e, DomainStatusChanged)]
    assert [(e.old_status, e.new_status) for e in moved] == [
        (DomainStatus.VERIFIED, DomainStatus.PENDING)
    ]
    # Asked again, it is already so: nothing more happens.
    before = len(uow.state.published)
    await domains.change(ACME, public_id, ChangeDomain({"mode": "send_receive"}), "r3")
    assert len(uow.state.published) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mode": "send_only"}, "mode"),
        ({"mode": "both"}, "mode"),
        ({}, "mode"),
        ({"mode": "send_receive", "region": "eu-west-1"}, "region"),
        ({"domain": "other.com"}, "domain"),
    ],
)
async def test_only_an_upgrade_of_the_mode_is_a_change(
    domains: DomainService, uow: FakeUnitOfWork, fields: dict[str, object], field: str
) -> None:
    public_id = await send_only_domain(domains, uow, DomainStatus.PENDING)
    with pytest.raises(UnsupportedChange) as refused:
        await domains.change(ACME, public_id, ChangeDomain(fields), "r2")
    assert refused.value.field == field
    assert uow.state.domains[public_id].mode is DomainMode.SEND_ONLY


async def test_a_stale_change_changes_nothing(domains: DomainService, uow: FakeUnitOfWork) -> None:
    public_id = await send_only_domain(domains, uow, DomainStatus.PENDING)
    with pytest.raises(StaleVersion):
        await domains.change(
            ACME, public_id, ChangeDomain({"mode": "send_receive"}, lambda _: False), "r2"
        )
    assert uow.state.domains[public_id].mode is DomainMode.SEND_ONLY
    changed = await domains.change(
        ACME, public_id, ChangeDomain({"mode": "send_receive"}, lambda _: True), "r3"
    )
    assert changed.mode is DomainMode.SEND_RECEIVE


@pytest.mark.parametrize("status", [DomainStatus.PROVISIONING, DomainStatus.DELETING])
async def test_a_busy_domain_takes_no_change(
    domains: DomainService, uow: FakeUnitOfWork, status: DomainStatus
) -> None:
    public_id = await send_only_domain(domains, uow, status)
    with pytest.raises(DomainBusy):
        await domains.change(ACME, public_id, ChangeDomain({"mode": "send_receive"}), "r2")
    with pytest.raises(DomainNotFound):
        await domains.change(GLOBEX, public_id, ChangeDomain({"mode": "send_receive"}), "r3")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("mail.localhost", "domain_special_use"),
        ("x.onion", "domain_special_use"),
        ("1.0.0.127.in-addr.arpa", "domain_special_use"),
        ("acme.example", "domain_special_use"),
        ("sendmux.ai", "domain_reserved"),  # the MX host's registrable domain
        ("mail.sendmux.ai", "domain_reserved"),  # the MX host itself
        ("team.myagent.mx", "domain_reserved"),  # the shared mailbox domain
        ("gmail.com", "domain_reserved"),
        ("bounce.amazonses.com", "domain_reserved"),
        ("ops.notify-sender.io", "domain_reserved"),  # the notifier's sender's domain
    ],
)
async def test_names_nobody_may_hold_are_refused(
    uow: FakeUnitOfWork, changes: FakeChanges, name: str, reason: str
) -> None:
    domains = service(uow, changes, names=NameSettings(notify_from="Ops <alerts@notify-sender.io>"))
    with pytest.raises(InvalidDomainInput) as refused:
        await domains.add(ACME, AddDomain(name), "req_1")
    assert (refused.value.reason, refused.value.field) == (reason, "domain")
    assert uow.state.domains == {}


async def test_a_sandbox_may_accept_special_use_names(
    uow: FakeUnitOfWork, changes: FakeChanges
) -> None:
    domains = service(uow, changes, names=NameSettings(special_use_allowed=["example"]))
    assert (await domains.add(ACME, AddDomain("acme.example"), "r")).domain.name == "acme.example"
    with pytest.raises(InvalidDomainInput):
        await domains.add(ACME, AddDomain("acme.test"), "r")


@pytest.mark.parametrize("region", ["us-east-9", "eu-west-1\n", "cn-north-1"])
async def test_only_regions_ses_serves_are_offered(domains: DomainService, region: str) -> None:
    with pytest.raises(InvalidDomainInput) as refused:
        await domains.add(ACME, AddDomain("acme.com", region=region), "req_1")
    assert refused.value.reason in ("region_not_offered", "region_invalid")
    assert (await domains.add(ACME, AddDomain("acme.com", region="ap-south-2"), "r")).domain
