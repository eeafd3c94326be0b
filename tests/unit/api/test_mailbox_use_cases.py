"""The mailbox use cases over the in-memory unit of work: where an address may live."""

from __future__ import annotations

import pytest

from domainflow.api.domain.errors import (
    DomainInUse,
    InvalidAddress,
    InvalidCursor,
    MailboxDomainMissing,
    MailboxDomainNotReady,
    MailboxDomainSendOnly,
    MailboxExists,
    MailboxNotFound,
)
from domainflow.api.domain.keys import Principal
from domainflow.api.domain.mailboxes import shared_suffix_domain
from domainflow.api.domains.service import AddDomain, DomainService
from domainflow.api.mailboxes.service import CreateMailbox, MailboxService
from domainflow.api.settings import ApiSettings, WriteLimitSettings
from domainflow.contracts import DomainMode, DomainStatus
from tests.unit.api.fakes import FakeChanges, FakeUnitOfWork

ACME = Principal(1, "team_acme", "key_acme", ("*",))
GLOBEX = Principal(2, "team_globex", "key_globex", ("*",))
SETTINGS = ApiSettings(write_limit=WriteLimitSettings(domain_write_rate=0.0))
SUFFIX = shared_suffix_domain("team_acme", SETTINGS.names.shared_mailbox_domain)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def mailboxes(uow: FakeUnitOfWork) -> MailboxService:
    return MailboxService(uow, SETTINGS)


async def domain(uow: FakeUnitOfWork, name: str, status: DomainStatus) -> str:
    domains = DomainService(uow, SETTINGS, FakeChanges())
    public_id = (await domains.add(ACME, AddDomain(name), "req")).domain.public_id
    uow.state.domains[public_id].status = status
    return public_id


async def test_an_address_under_the_teams_shared_suffix(mailboxes: MailboxService) -> None:
    row = await mailboxes.create(ACME, CreateMailbox(f"agent@{SUFFIX}"))
    assert (row.address, row.domain_id) == (f"agent@{SUFFIX}", None)
    with pytest.raises(InvalidAddress) as elsewhere:
        await mailboxes.create(
            ACME, CreateMailbox(f"agent@other.{SETTINGS.names.shared_mailbox_domain}")
        )
    assert (elsewhere.value.reason, elsewhere.value.suffix) == ("shared_suffix_required", SUFFIX)
    with pytest.raises(InvalidAddress) as malformed:
        await mailboxes.create(ACME, CreateMailbox("no-at-sign"))
    assert malformed.value.field == "address"


async def test_a_custom_domain_takes_mailboxes_only_once_verified(
    mailboxes: MailboxService, uow: FakeUnitOfWork
) -> None:
    with pytest.raises(MailboxDomainMissing):
        await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    public_id = await domain(uow, "acme.com", DomainStatus.PENDING)
    with pytest.raises(MailboxDomainNotReady) as pending:
        await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    assert (pending.value.domain_id, pending.value.status) == (public_id, DomainStatus.PENDING)
    uow.state.domains[public_id].status = DomainStatus.DELETING
    with pytest.raises(MailboxDomainNotReady) as deleting:
        await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    assert deleting.value.status is DomainStatus.DELETING
    uow.state.domains[public_id].status = DomainStatus.VERIFIED
    row = await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    assert row.domain_public_id == public_id
    # Another team's domain is as missing as one nobody added.
    with pytest.raises(MailboxDomainMissing):
        await mailboxes.create(GLOBEX, CreateMailbox("b@acme.com"))


async def test_an_address_is_held_once(mailboxes: MailboxService, uow: FakeUnitOfWork) -> None:
    await domain(uow, "acme.com", DomainStatus.VERIFIED)
    first = await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    with pytest.raises(MailboxExists) as own:
        await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    assert own.value.own_id == first.public_id


async def test_mailboxes_are_read_listed_and_deleted_by_their_team(
    mailboxes: MailboxService, uow: FakeUnitOfWork
) -> None:
    public_id = await domain(uow, "acme.com", DomainStatus.VERIFIED)
    rows = [await mailboxes.create(ACME, CreateMailbox(f"m{i}@acme.com")) for i in range(3)]
    assert (await mailboxes.get(ACME, rows[0].public_id)).address == "m0@acme.com"
    with pytest.raises(MailboxNotFound):
        await mailboxes.get(GLOBEX, rows[0].public_id)
    page = await mailboxes.list(ACME, None, 2, None)
    assert page.has_more
    rest = await mailboxes.list(ACME, page.next_cursor, 2, public_id)
    assert [r.public_id for r in page.items + rest.items] == [r.public_id for r in rows]
    with pytest.raises(InvalidCursor):
        await mailboxes.list(ACME, "zzz", 2, None)
    # A live mailbox keeps its domain; deleted, it lets the domain go.
    domains = DomainService(uow, SETTINGS, FakeChanges())
    with pytest.raises(DomainInUse):
        await domains.delete(ACME, public_id, "req")
    for row in rows:
        assert (await mailboxes.delete(ACME, row.public_id)).deleted_at is not None
    with pytest.raises(MailboxNotFound):
        await mailboxes.delete(ACME, rows[0].public_id)
    assert not (await domains.delete(ACME, public_id, "req")).done


async def test_a_send_only_domain_hosts_no_mailbox(
    mailboxes: MailboxService, uow: FakeUnitOfWork
) -> None:
    public_id = await domain(uow, "acme.com", DomainStatus.VERIFIED)
    uow.state.domains[public_id].mode = DomainMode.SEND_ONLY
    with pytest.raises(MailboxDomainSendOnly) as refused:
        await mailboxes.create(ACME, CreateMailbox("a@acme.com"))
    assert refused.value.domain_id == public_id
