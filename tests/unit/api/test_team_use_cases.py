"""Teams, keys and the key ring over the in-memory unit of work."""

from __future__ import annotations

import pytest

from domainflow.api.teams import service as teams
from domainflow.api.teams.keyring import KeyRing
from tests.unit.api.fakes import FakeUnitOfWork


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


async def test_a_key_creates_its_team_and_owner_once(uow: FakeUnitOfWork) -> None:
    first = await teams.create_key(
        uow, team="acme", owner_email=" Ops@Acme.com ", role="root:full", prefix="smx"
    )
    second = await teams.create_key(
        uow, team="acme", owner_email=None, role="root:readonly", prefix="smx"
    )
    assert first.team_public_id == second.team_public_id
    assert first.plaintext.startswith("smx_root_")
    assert second.plaintext.startswith("smx_readonly_")
    assert uow.state.members == {(uow.state.teams["acme"].pk, "ops@acme.com"): "owner"}
    assert [k.role for k in await teams.list_keys(uow, "acme")] == ["root:full", "root:readonly"]
    with pytest.raises(ValueError, match="role"):
        await teams.create_key(uow, team="acme", owner_email=None, role="root:god", prefix="smx")


async def test_members_join_only_a_team_that_exists(uow: FakeUnitOfWork) -> None:
    assert not await teams.add_member(uow, team="nobody", email="a@b.c", role="owner")
    await teams.create_key(uow, team="acme", owner_email=None, role="root:full", prefix="smx")
    assert await teams.add_member(uow, team="acme", email="B@acme.com", role="member")
    assert ("b@acme.com") in {email for (_, email) in uow.state.members}


async def test_the_key_ring_remembers_a_key_until_it_is_revoked(uow: FakeUnitOfWork) -> None:
    key = await teams.create_key(uow, team="acme", owner_email=None, role="root:full", prefix="smx")
    ring = KeyRing(uow, "postgresql://unused", remember_seconds=30)
    principal = await ring.principal(key.plaintext)
    assert principal is not None
    assert (principal.team_public_id, principal.key_id) == (key.team_public_id, key.key_id)
    assert await ring.principal("smx_root_" + "x" * 44) is None
    # Revoked from another replica: this one trusts its memory until notified...
    assert await teams.revoke_key(uow, key.key_id)
    assert await ring.principal(key.plaintext) is not None
    [(channel, key_hash)] = uow.state.notified
    assert channel == teams.REVOKED_CHANNEL
    ring.forget(key_hash)  # ...which is what the notification does
    assert await ring.principal(key.plaintext) is None
    assert not await teams.revoke_key(uow, key.key_id)  # once


async def test_a_key_revoked_through_the_ring_is_forgotten_at_once(uow: FakeUnitOfWork) -> None:
    key = await teams.create_key(uow, team="acme", owner_email=None, role="root:full", prefix="smx")
    ring = KeyRing(uow, "postgresql://unused", remember_seconds=30)
    assert await ring.principal(key.plaintext) is not None
    assert await ring.revoke(key.key_id)
    assert await ring.principal(key.plaintext) is None


async def test_with_no_memory_every_request_looks_the_key_up(uow: FakeUnitOfWork) -> None:
    key = await teams.create_key(uow, team="acme", owner_email=None, role="root:full", prefix="smx")
    ring = KeyRing(uow, "postgresql://unused", remember_seconds=0)
    assert await ring.principal(key.plaintext) is not None
    await teams.revoke_key(uow, key.key_id)
    assert await ring.principal(key.plaintext) is None


@pytest.mark.parametrize(
    "raw",
    [
        "a@x\r\nbcc: b@y",  # a header smuggled into the address
        "Name <a@b.com>",
        "a@b.com, c@d.com",
        "not-an-address",
        "ops@printer.local",
    ],
)
async def test_an_owner_must_be_one_plain_address(uow: FakeUnitOfWork, raw: str) -> None:
    with pytest.raises(ValueError, match="is not an email address"):
        await teams.create_key(uow, team="acme", owner_email=raw, role="root:full", prefix="smx")
    assert uow.state.teams == {}  # refused before anything was written
    with pytest.raises(ValueError, match="is not an email address"):
        await teams.add_member(uow, team="acme", email=raw, role="owner")
