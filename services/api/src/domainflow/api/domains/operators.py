"""What the platform's operators do to domains from the CLI: find who holds a name, take it back.

A name is unique across teams while active (docs/architecture.md), so a team can hold a
name it does not own. Support settles such a dispute outside the system; `release` is the
step that follows: the same deletion a team's DELETE starts (mailboxes first, then the
provisioner undoes SES and the mail server), recorded on the domain's timeline with the
operator's reason, after which the rightful owner can add the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.api.domain.model import Domain
from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
from domainflow.api.domains.repository import TimelineEntry
from domainflow.api.domains.service import start_deletion
from domainflow.api.settings import ApiSettings
from domainflow.api.teams.repository import Team
from domainflow.api.unit_of_work import UnitOfWork
from domainflow.kit.ids import new_id


class NameNotHeldError(LookupError):
    pass


@dataclass(frozen=True)
class Holding:
    """Who holds a name, in what state, and the latest lines of its timeline."""

    domain: Domain
    team: Team
    owners: list[str]
    timeline: list[TimelineEntry]


def _name(raw: str) -> str:
    try:
        return normalize_domain(raw.strip().rstrip(".").lower())
    except DomainNameInvalid as bad:
        raise ValueError(bad.message) from None


async def holder(uow: UnitOfWork, raw_name: str, *, history: int = 10) -> Holding:
    name = _name(raw_name)
    async with uow.read() as work:
        domain = await work.domains.holding(name)
        if domain is None:
            raise NameNotHeldError(f"no team holds {name}")
        team = await work.teams.by_pk(domain.team_pk)
        assert team is not None  # domains reference teams
        owners = await work.teams.owner_emails(domain.team_pk)
        lines = await work.domains.timeline(domain, before_id=None, limit=history)
    return Holding(domain, team, owners, lines)


async def release(uow: UnitOfWork, settings: ApiSettings, raw_name: str, *, reason: str) -> str:
    """Start deleting the domain holding the name, whichever team holds it; returns its id.

    Raises `NameNotHeldError`, or the refusal a team's own DELETE would meet (`DomainInUse`
    while mailboxes live on it, `DomainBusy` while it is still being provisioned).
    """
    if not reason.strip():
        raise ValueError("say why the name is released: it goes on the domain's timeline")
    name = _name(raw_name)
    async with uow.transaction() as work:
        held = await work.domains.holding(name)
        if held is None:
            raise NameNotHeldError(f"no team holds {name}")
        domain = await work.domains.get(held.public_id, for_update=True)
        if domain is None:  # deleted between the two reads
            raise NameNotHeldError(f"no team holds {name}")
        await start_deletion(
            work,
            settings,
            domain,
            request_id=new_id("op"),
            reason=f"released by an operator: {reason.strip()}",
        )
    return domain.public_id
