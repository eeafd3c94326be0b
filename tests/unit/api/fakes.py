"""An in-memory unit of work for the api's use cases and handlers (cosmicpython's FakeUnitOfWork).

It keeps what the PostgreSQL one keeps — domains, their timeline, idempotency keys, teams,
keys, budgets, mailboxes, the outbox and the inbox — in plain objects. A transaction works on
a copy and replaces the state only when its block ends without an exception, so a refused
request leaves nothing behind here either.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from domainflow.api.domain.claims import Claim, ClaimVerdict
from domainflow.api.domain.errors import NameTaken
from domainflow.api.domain.model import Domain
from domainflow.api.domain.throttle import Decision, admit
from domainflow.api.domains.repository import RememberedRequest, TimelineEntry
from domainflow.api.mailboxes.repository import LockedDomain, MailboxRow
from domainflow.api.teams.repository import KeyListing, KeyRecord, Team
from domainflow.contracts import DomainStatus, Event

T = TypeVar("T")


@dataclass
class _Key:
    record: KeyRecord
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass
class State:
    domains: dict[str, Domain] = field(default_factory=dict)
    timeline: list[tuple[int, TimelineEntry]] = field(default_factory=list)
    remembered: dict[tuple[int, str], RememberedRequest] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    members: dict[tuple[int, str], str] = field(default_factory=dict)
    keys: dict[str, _Key] = field(default_factory=dict)
    budgets: dict[tuple[int, str], float] = field(default_factory=dict)
    mailboxes: list[MailboxRow] = field(default_factory=list)
    claims: dict[str, Claim] = field(default_factory=dict)
    published: list[Event] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    notified: list[tuple[str, str]] = field(default_factory=list)
    next_pk: int = 1

    def pk(self) -> int:
        self.next_pk += 1
        return self.next_pk - 1


def _version_of(domain: Domain) -> str:
    """A stand-in for the store's row version: it changes whenever any field does (the
    mailbox count included, as `get` fills it in)."""
    return hashlib.sha256(repr(replace(domain, version="")).encode()).hexdigest()[:16]


class FakeDomains:
    def __init__(self, state: State) -> None:
        self._s = state

    async def get(
        self, public_id: str, *, for_update: bool = False, include_deleted: bool = False
    ) -> Domain | None:
        domain = self._s.domains.get(public_id)
        if domain is None or (domain.status is DomainStatus.DELETED and not include_deleted):
            return None
        return replace(domain, mailbox_count=self._mailboxes(domain))

    async def of_team(self, team_pk: int, team_public_id: str, public_id: str) -> Domain | None:
        domain = await self.get(public_id)
        if domain is None or domain.team_pk != team_pk:
            return None
        assert domain.team_public_id == team_public_id, "a principal names its own team"
        return replace(domain, version=_version_of(domain))

    async def version_of_team(self, team_pk: int, public_id: str) -> str | None:
        domain = await self.get(public_id)
        if domain is None or domain.team_pk != team_pk:
            return None
        return _version_of(domain)

    async def holding(self, name: str) -> Domain | None:
        for domain in self._s.domains.values():
            if domain.name == name and domain.status is not DomainStatus.DELETED:
                return replace(domain)
        return None

    async def list_of_team(
        self, team_pk: int, *, after: str | None, limit: int, statuses: list[str] | None
    ) -> list[Domain] | None:
        before_pk = None
        if after is not None:
            anchor = self._s.domains.get(after)
            if anchor is None or anchor.team_pk != team_pk:
                return None
            before_pk = anchor.pk
        found = sorted(
            (
                d
                for d in self._s.domains.values()
                if d.team_pk == team_pk
                and d.status is not DomainStatus.DELETED
                and (before_pk is None or d.pk < before_pk)
                and (statuses is None or d.status.value in statuses)
            ),
            key=lambda d: -d.pk,
        )
        return [replace(d, mailbox_count=self._mailboxes(d)) for d in found[:limit]]

    def _mailboxes(self, domain: Domain) -> int:
        return sum(1 for m in self._s.mailboxes if m.domain_id == domain.pk and not m.deleted_at)

    async def add(self, domain: Domain) -> Domain:
        if await self.holding(domain.name) is not None:
            raise NameTaken(domain.name)
        stored = replace(domain, pk=self._s.pk(), created_at=datetime.now(UTC))
        self._s.domains[stored.public_id] = stored
        return replace(stored)

    async def save(self, domain: Domain) -> None:
        assert domain.public_id in self._s.domains, "save() of a domain never added"
        self._s.domains[domain.public_id] = replace(domain)

    async def identities_by_account(self, region: str, default_account: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self._s.domains.values():
            if d.region == region and d.status is not DomainStatus.DELETED:
                name = d.ses_account or default_account
                counts[name] = counts.get(name, 0) + 1
        return counts

    async def identities_by_place(self, default_account: str) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for d in self._s.domains.values():
            if d.status is not DomainStatus.DELETED:
                place = (d.ses_account or default_account, d.region)
                counts[place] = counts.get(place, 0) + 1
        return counts

    async def active_mailboxes(self, domain: Domain) -> int:
        return sum(1 for m in self._s.mailboxes if m.domain_id == domain.pk and not m.deleted_at)

    async def note(
        self,
        domain: Domain,
        *,
        happening: str,
        status_before: str | None,
        reason: str,
        request_id: str,
        outcome: str | None = None,
        ses_dkim_status: str | None = None,
        checks: list[dict[str, Any]] | None = None,
    ) -> None:
        entry = TimelineEntry(
            id=self._s.pk(),
            at=datetime.now(UTC),
            happening=happening,
            status_before=status_before,
            status_after=domain.status.value,
            reason=reason,
            outcome=outcome,
            ses_dkim_status=ses_dkim_status,
            checks=checks,
            request_id=request_id,
        )
        self._s.timeline.append((domain.pk, entry))

    async def timeline(
        self, domain: Domain, *, before_id: int | None, limit: int
    ) -> list[TimelineEntry]:
        lines = [e for pk, e in self._s.timeline if pk == domain.pk]
        lines = [e for e in lines if before_id is None or e.id < before_id]
        return sorted(lines, key=lambda e: -e.id)[:limit]

    async def remembered(self, team_pk: int, key: str) -> RememberedRequest | None:
        return self._s.remembered.get((team_pk, key))

    async def remember(self, team_pk: int, key: str, request_hash: str, domain_id: str) -> None:
        if (team_pk, key) in self._s.remembered:
            raise NameTaken(key)
        self._s.remembered[(team_pk, key)] = RememberedRequest(request_hash, domain_id)

    async def spend_keys(self, domain_id: str) -> int:
        spent = [k for k, seen in self._s.remembered.items() if seen.domain_id == domain_id]
        for k in spent:
            del self._s.remembered[k]
        return len(spent)


class FakeTeams:
    def __init__(self, state: State, clock: Callable[[], float]) -> None:
        self._s = state
        self._clock = clock

    async def named(self, name: str) -> Team | None:
        return self._s.teams.get(name)

    async def by_pk(self, pk: int) -> Team | None:
        return next((t for t in self._s.teams.values() if t.pk == pk), None)

    async def add(self, public_id: str, name: str) -> Team:
        return self._s.teams.setdefault(name, Team(self._s.pk(), public_id, name))

    async def set_member(self, team: Team, email: str, role: str) -> None:
        self._s.members[(team.pk, email)] = role

    async def owner_emails(self, team_pk: int) -> list[str]:
        return sorted(
            e for (pk, e), role in self._s.members.items() if pk == team_pk and role == "owner"
        )

    async def add_key(
        self, team: Team, key_id: str, key_hash: str, role: str, permissions: list[str]
    ) -> None:
        record = KeyRecord(key_id, team.pk, team.public_id, role, tuple(permissions), False)
        self._s.keys[key_id] = _Key(record, key_hash, datetime.now(UTC))

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        for key in self._s.keys.values():
            if key.key_hash == key_hash:
                return replace(key.record, revoked=key.revoked_at is not None)
        return None

    async def keys(self, team_name: str | None) -> list[KeyListing]:
        names = {t.pk: t.name for t in self._s.teams.values()}
        return [
            KeyListing(
                k.record.key_id,
                names[k.record.team_pk],
                k.record.role,
                k.created_at,
                k.last_used_at,
                k.revoked_at,
            )
            for k in self._s.keys.values()
            if team_name is None or names[k.record.team_pk] == team_name
        ]

    async def revoke_key(self, key_id: str, channel: str) -> str | None:
        key = self._s.keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return None
        key.revoked_at = datetime.now(UTC)
        self._s.notified.append((channel, key.key_hash))
        return key.key_hash

    async def touch_keys(self, key_ids: list[str]) -> None:
        for key_id in key_ids:
            self._s.keys[key_id].last_used_at = datetime.now(UTC)

    async def spend(self, team_pk: int, bucket: str, *, rate: float, burst: int) -> Decision:
        now = self._clock()
        decision = admit(self._s.budgets.get((team_pk, bucket), now), now, rate=rate, burst=burst)
        if decision.admitted:
            self._s.budgets[(team_pk, bucket)] = decision.tat
        return decision


class FakeMailboxes:
    def __init__(self, state: State) -> None:
        self._s = state

    async def lock_team_domain(self, team_id: int, name: str) -> LockedDomain | None:
        for d in self._s.domains.values():
            if d.team_pk == team_id and d.name == name and d.status is not DomainStatus.DELETED:
                return LockedDomain(d.pk, d.public_id, d.name, d.status.value, d.mode.value)
        return None

    async def add(
        self, *, public_id: str, team_id: int, domain_id: int | None, address: str
    ) -> MailboxRow:
        if await self.holding(address) is not None:
            raise NameTaken(address)
        domain = next((d for d in self._s.domains.values() if d.pk == domain_id), None)
        row = MailboxRow(
            id=self._s.pk(),
            public_id=public_id,
            team_id=team_id,
            address=address,
            domain_id=domain_id,
            domain_public_id=domain.public_id if domain else None,
            created_at=datetime.now(UTC),
            deleted_at=None,
        )
        self._s.mailboxes.append(row)
        return row

    async def holding(self, address: str) -> MailboxRow | None:
        return next(
            (m for m in self._s.mailboxes if m.address == address and not m.deleted_at), None
        )

    async def of_team(self, team_id: int, public_id: str) -> MailboxRow | None:
        return next(
            (
                m
                for m in self._s.mailboxes
                if m.public_id == public_id and m.team_id == team_id and not m.deleted_at
            ),
            None,
        )

    async def list_of_team(
        self, team_id: int, *, after_id: int, limit: int, domain_public_id: str | None
    ) -> list[MailboxRow]:
        rows = [
            m
            for m in self._s.mailboxes
            if m.team_id == team_id
            and not m.deleted_at
            and m.id > after_id
            and (domain_public_id is None or m.domain_public_id == domain_public_id)
        ]
        return rows[:limit]

    async def delete(self, team_id: int, public_id: str) -> MailboxRow | None:
        row = await self.of_team(team_id, public_id)
        if row is None:
            return None
        deleted = replace(row, deleted_at=datetime.now(UTC))
        self._s.mailboxes[self._s.mailboxes.index(row)] = deleted
        return deleted


class FakeClaims:
    def __init__(self, state: State) -> None:
        self._s = state

    async def add(self, claim: Claim) -> None:
        if claim.idempotency_key is not None and any(
            (c.team_pk, c.idempotency_key) == (claim.team_pk, claim.idempotency_key)
            for c in self._s.claims.values()
        ):
            raise NameTaken(claim.public_id)
        self._s.claims[claim.public_id] = replace(
            claim, pk=self._s.pk(), created_at=datetime.now(UTC)
        )

    async def get(self, public_id: str, *, for_update: bool = False) -> Claim | None:
        found = self._s.claims.get(public_id)
        return replace(found) if found else None

    async def by_key(self, team_pk: int, key: str) -> Claim | None:
        for claim in self._s.claims.values():
            if (claim.team_pk, claim.idempotency_key) == (team_pk, key):
                return replace(claim)
        return None

    async def awaiting(self, released_domain_id: str) -> Claim | None:
        for claim in self._s.claims.values():
            if claim.released_domain_id == released_domain_id and claim.domain_public_id is None:
                return replace(claim)
        return None

    async def waiting_on(self, holder_domain_id: str) -> list[Claim]:
        return [
            replace(c)
            for c in self._s.claims.values()
            if c.holder_domain_id == holder_domain_id
            and c.verdict is ClaimVerdict.WAITS_FOR_MAILBOXES
            and c.domain_public_id is None
        ]

    async def save(self, claim: Claim) -> None:
        self._s.claims[claim.public_id] = replace(claim)


class FakeWork:
    def __init__(self, state: State, clock: Callable[[], float]) -> None:
        self._state = state
        self.domains = FakeDomains(state)
        self.teams = FakeTeams(state, clock)
        self.mailboxes = FakeMailboxes(state)
        self.claims = FakeClaims(state)

    async def emit(self, *events: Event) -> None:
        self._state.published.extend(events)

    async def first_sight(self, consumer: str, event: Event) -> bool:
        key = (consumer, str(event.event_id))
        if key in self._state.seen:
            return False
        self._state.seen.add(key)
        return True


class FakeUnitOfWork:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = State()
        self.clock = clock
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeWork]:
        draft = copy.deepcopy(self.state)
        yield FakeWork(draft, self.clock)
        self.state = draft  # only reached when the block raised nothing
        self.commits += 1

    @asynccontextmanager
    async def read(self) -> AsyncIterator[FakeWork]:
        yield FakeWork(self.state, self.clock)


class FakeChanges:
    """Waits no time: runs `meanwhile` (what another service would do) once, then loads."""

    def __init__(self) -> None:
        self.meanwhile: Callable[[str], Awaitable[None]] | None = None

    async def wait_for(
        self,
        public_id: str,
        load: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float,  # noqa: ASYNC109 - the protocol's signature
    ) -> T:
        if self.meanwhile is not None:
            await self.meanwhile(public_id)
        return await load()
