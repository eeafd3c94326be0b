"""Teams, owners and API keys, as the operator's CLI manages them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cuid2 import create_id

from domainflow.api.adapters import repository
from domainflow.api.domain.keys import generate_key, permissions_for_role
from domainflow.kit.database import Database


def _cuid() -> str:
    return str(create_id())


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    key_id: str
    team_name: str
    team_public_id: str
    role: str


async def create_key(
    db: Database, *, team: str, owner_email: str | None, role: str, prefix: str
) -> NewKey:
    """Issue a key for `team`, creating the team (and its owner) when it is new."""
    permissions = sorted(permissions_for_role(role))  # raises on an unknown role
    issued = generate_key(prefix=prefix, role=role)
    async with db.transaction() as conn:
        found = await repository.team_by_name(conn, team)
        if found is None:
            found = await repository.insert_team(conn, f"team_{_cuid()}", team)
        if owner_email:
            await repository.upsert_member(conn, found.id, owner_email.strip().lower(), "owner")
        await repository.insert_key(conn, found.id, issued.key_id, issued.hash, role, permissions)
    return NewKey(issued.plaintext, issued.key_id, found.name, found.public_id, role)


async def add_member(db: Database, *, team: str, email: str, role: str) -> bool:
    async with db.transaction() as conn:
        found = await repository.team_by_name(conn, team)
        if found is None:
            return False
        await repository.upsert_member(conn, found.id, email.strip().lower(), role)
    return True


async def list_keys(db: Database, team: str | None) -> list[dict[str, Any]]:
    async with db.pool.acquire() as conn:
        return [dict(r) for r in await repository.list_keys(conn, team)]


async def revoke_key(db: Database, key_id: str) -> bool:
    async with db.transaction() as conn:
        return await repository.revoke_key(conn, key_id)
