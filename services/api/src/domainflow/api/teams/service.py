"""Teams, owners and API keys, as the operator's CLI manages them."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from domainflow.api.domain.keys import generate_key, permissions_for_role
from domainflow.api.teams.repository import KeyListing
from domainflow.api.unit_of_work import UnitOfWork
from domainflow.kit.ids import new_id

#: Every api replica forgets a revoked key the moment this is notified (teams/keyring.py).
REVOKED_CHANNEL = "domainflow_key_revoked"


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    key_id: str
    team_name: str
    team_public_id: str
    role: str


def owner_address(raw: str) -> str:
    """One mailbox address, as an email's To can carry it (no display name, no header
    characters), normalized; ValueError saying why not."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as bad:
        raise ValueError(f"{raw!r} is not an email address: {bad}") from None
    return checked.normalized.lower()


async def create_key(
    uow: UnitOfWork, *, team: str, owner_email: str | None, role: str, prefix: str
) -> NewKey:
    """Issue a key for `team`, creating the team (and its owner) when it is new."""
    permissions = sorted(permissions_for_role(role))  # raises on an unknown role
    issued = generate_key(prefix=prefix, role=role)
    owner = owner_address(owner_email) if owner_email else None  # before anything is written
    async with uow.transaction() as work:
        found = await work.teams.named(team)
        if found is None:
            found = await work.teams.add(new_id("team"), team)
        if owner is not None:
            await work.teams.set_member(found, owner, "owner")
        await work.teams.add_key(found, issued.key_id, issued.hash, role, permissions)
    return NewKey(issued.plaintext, issued.key_id, found.name, found.public_id, role)


async def add_member(uow: UnitOfWork, *, team: str, email: str, role: str) -> bool:
    address = owner_address(email)
    async with uow.transaction() as work:
        found = await work.teams.named(team)
        if found is None:
            return False
        await work.teams.set_member(found, address, role)
    return True


async def list_keys(uow: UnitOfWork, team: str | None) -> list[KeyListing]:
    async with uow.read() as work:
        return await work.teams.keys(team)


async def revoke_key(uow: UnitOfWork, key_id: str) -> bool:
    """Revoke the key; every api replica stops honouring it when the revocation commits."""
    async with uow.transaction() as work:
        return await work.teams.revoke_key(key_id, REVOKED_CHANNEL) is not None
