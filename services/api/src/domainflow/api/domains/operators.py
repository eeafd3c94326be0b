"""What the platform's operators do to domains from the CLI: find who holds a name, take it back.

A name is unique across teams while active (docs/architecture.md), so a team can hold a
name it does not own. Support settles such a dispute outside the system; `release` is the
step that follows: the same deletion a team's DELETE starts (mailboxes first, then the
provisioner undoes SES and the mail server), recorded on the domain's timeline with the
operator's reason, after which the rightful owner can add the name.

`release` also clears a domain stuck on its way in or out, whatever held it: a request
event parked as poison, a saga stopped for an operator, a deletion that never ends. A
domain still `provisioning` or already `deleting` is deleted at once (its name is free)
and the provisioner is asked again to remove whatever it may have left: sagas of one name
run oldest first there, and a removal never touches a name provisioned again since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from domainflow.api.domain import state as sm
from domainflow.api.domain.events import Why, deleted, status_changed
from domainflow.api.domain.model import Domain
from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
from domainflow.api.domains.repository import TimelineEntry
from domainflow.api.domains.service import start_deletion
from domainflow.api.settings import ApiSettings
from domainflow.api.teams.repository import Team
from domainflow.api.unit_of_work import UnitOfWork, Work
from domainflow.contracts import ChangeReason, ChangeTrigger, DeletionRequested, DomainStatus
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


@dataclass(frozen=True)
class AccountRegionUsage:
    """One SES account-region: identities held against the cap, and whether it takes more."""

    account: str
    region: str
    identities: int
    cap: int
    takes_new_domains: bool


async def accounts_usage(uow: UnitOfWork, settings: ApiSettings) -> list[AccountRegionUsage]:
    """Every configured account in each region it holds domains in or serves (the default
    account too while domains placed before accounts live there)."""
    ses = settings.ses
    async with uow.read() as work:
        counts = await work.domains.identities_by_place(ses.default_account)
    caps = {a.name: a for a in ses.account_list()}
    places = set(counts) | {(a.name, r) for a in caps.values() for r in a.regions}
    usage = []
    for account, region in sorted(places):
        configured = caps.get(account)
        cap = configured.identity_cap if configured else 0
        held = counts.get((account, region), 0)
        takes = configured is not None and configured.serves(region)
        takes = takes and held < cap - ses.identity_margin
        usage.append(AccountRegionUsage(account, region, held, cap, takes))
    return usage


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

    Raises `NameNotHeldError`, or `DomainInUse` while mailboxes live on a settled domain
    (they go first, as for a team's own DELETE). A domain stuck provisioning or deleting is
    cleared at once.
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
        request_id = new_id("op")
        said = f"released by an operator: {reason.strip()}"
        if domain.status in (DomainStatus.PROVISIONING, DomainStatus.DELETING):
            await _clear(work, settings, domain, request_id=request_id, reason=said)
        else:
            await start_deletion(work, settings, domain, request_id=request_id, reason=said)
    return domain.public_id


async def _clear(
    work: Work, settings: ApiSettings, domain: Domain, *, request_id: str, reason: str
) -> None:
    """Delete a domain stuck provisioning or deleting now, and ask the provisioner to remove
    what it may have left (a stopped removal starts again)."""
    old = domain.status
    move = domain.apply(sm.Released())
    domain.deleted_at = datetime.now(UTC)
    why = Why(reason, ChangeReason.RELEASED_BY_OPERATOR, ChangeTrigger.OPERATOR)
    changed = status_changed(
        domain,
        old,
        move,
        why,
        records=settings.records.rules,
        owner_emails=await work.teams.owner_emails(domain.team_pk) if move.notify_owners else [],
        correlation_id=request_id,
        causation_id=None,
    )
    gone = deleted(
        domain, why, settings.records.rules, correlation_id=request_id, causation_id=None
    )
    await work.domains.save(domain)  # with the sequence its public events took
    await work.domains.note(
        domain,
        happening="released",
        status_before=old.value,
        reason=f"{reason} (it was {old.value}; the provisioner removes from SES and the mail "
        "server whatever is left of it)",
        request_id=request_id,
    )
    await work.emit(
        *changed,
        gone,
        DeletionRequested(
            correlation_id=request_id,
            team_id=domain.team_public_id,
            domain_id=domain.public_id,
            domain=domain.name,
            region=domain.region,
            ses_account=domain.ses_account,
        ),
    )
