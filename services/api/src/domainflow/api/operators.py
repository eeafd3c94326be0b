"""What the platform's operators do to domains from the CLI: find who holds a name, take it back.

A name is unique across teams while active (docs/architecture.md), so a team can hold a
name it does not own. Support settles such a dispute outside the system; `release` is the
step that follows: the same deletion a team's DELETE starts (mailboxes first, then the
provisioner undoes SES and the mail server), recorded on the domain's timeline with the
operator's reason, after which the rightful owner can add the name.
"""

from __future__ import annotations

from typing import Any

import msgspec
from cuid2 import create_id

from domainflow.api.adapters import repository
from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
from domainflow.api.domains import request_deletion
from domainflow.api.presenters import timeline_view
from domainflow.api.settings import ApiSettings
from domainflow.kit.database import Database


class NameNotHeldError(LookupError):
    pass


def _name(raw: str) -> str:
    try:
        return normalize_domain(raw.strip().rstrip(".").lower())
    except DomainNameInvalid as bad:
        raise ValueError(bad.message) from None


async def holder(db: Database, raw_name: str, *, history: int = 10) -> dict[str, Any]:
    """Who holds the name, in what state, and the latest lines of its timeline."""
    name = _name(raw_name)
    async with db.pool.acquire() as conn:
        row = await repository.active_domain_by_name(conn, name)
        if row is None:
            raise NameNotHeldError(f"no team holds {name}")
        team = await conn.fetchrow("SELECT name, public_id FROM teams WHERE id = $1", row.team_id)
        assert team is not None  # domains reference teams
        owners = await repository.owner_emails(conn, row.team_id)
        lines = await repository.timeline(conn, row.id, before_id=None, limit=history)
    return {
        "id": row.public_id,
        "domain": row.domain,
        "team": {"name": team["name"], "id": team["public_id"], "owners": owners},
        "state": row.status,
        "created_at": row.created_at.isoformat(),
        "verified_at": row.verified_at.isoformat() if row.verified_at else None,
        "last_checked_at": row.last_checked_at.isoformat() if row.last_checked_at else None,
        "timeline": [msgspec.to_builtins(timeline_view(line)) for line in lines],
    }


async def release(db: Database, settings: ApiSettings, raw_name: str, *, reason: str) -> str:
    """Start deleting the domain holding the name, whichever team holds it; returns its id.

    Raises `NameNotHeldError`, or `ApiError` (409) when mailboxes still live on it or it is
    still being provisioned, exactly as the team's own DELETE would.
    """
    if not reason.strip():
        raise ValueError("say why the name is released: it goes on the domain's timeline")
    name = _name(raw_name)
    request_id = f"op_{create_id()}"
    async with db.transaction() as conn:
        row = await repository.active_domain_by_name(conn, name)
        if row is None:
            raise NameNotHeldError(f"no team holds {name}")
        locked = await repository.domain_by_public_id(conn, row.public_id, for_update=True)
        if locked is None:  # deleted between the two reads
            raise NameNotHeldError(f"no team holds {name}")
        await request_deletion(
            conn,
            settings,
            locked,
            request_id=request_id,
            reason=f"released by an operator: {reason.strip()}",
        )
    return locked.public_id
