"""The api's unit of work: its repositories, outbox and inbox over one PostgreSQL transaction.

Use cases and handlers depend on the `UnitOfWork` protocol only, so the fast tests run them
over an in-memory one (tests/unit/api/fakes.py) and the service over `PostgresUnitOfWork`.
`transaction()` commits what was done and emitted together, or nothing; `read()` is one
connection without a transaction, for the read path (a BEGIN and a COMMIT would double its
round trips).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from domainflow.api.claims.repository import ClaimRepository
from domainflow.api.domain.claims import Claim
from domainflow.api.domain.model import Domain
from domainflow.api.domain.throttle import Decision
from domainflow.api.domains.repository import (
    DomainRepository,
    RememberedRequest,
    TimelineEntry,
)
from domainflow.api.mailboxes.repository import LockedDomain, MailboxRepository, MailboxRow
from domainflow.api.teams.repository import KeyListing, KeyRecord, Team, TeamRepository
from domainflow.contracts import Event
from domainflow.kit import inbox, outbox
from domainflow.kit.database import Connection, Database


class Domains(Protocol):
    """The domains repository, as use cases see it (domains/repository.py)."""

    async def get(
        self, public_id: str, *, for_update: bool = False, include_deleted: bool = False
    ) -> Domain | None: ...
    async def of_team(self, team_pk: int, team_public_id: str, public_id: str) -> Domain | None: ...
    async def version_of_team(self, team_pk: int, public_id: str) -> str | None: ...
    async def holding(self, name: str) -> Domain | None: ...
    async def list_of_team(
        self, team_pk: int, *, after: str | None, limit: int, statuses: list[str] | None
    ) -> list[Domain] | None: ...
    async def add(self, domain: Domain) -> Domain: ...
    async def save(self, domain: Domain) -> None: ...
    async def identities_by_account(self, region: str, default_account: str) -> dict[str, int]: ...
    async def identities_by_place(self, default_account: str) -> dict[tuple[str, str], int]: ...
    async def active_mailboxes(self, domain: Domain) -> int: ...
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
    ) -> None: ...
    async def timeline(
        self, domain: Domain, *, before_id: int | None, limit: int
    ) -> list[TimelineEntry]: ...
    async def remembered(self, team_pk: int, key: str) -> RememberedRequest | None: ...
    async def remember(self, team_pk: int, key: str, request_hash: str, domain_id: str) -> None: ...
    async def spend_keys(self, domain_id: str) -> int: ...


class Teams(Protocol):
    """Teams, members, keys and budgets (teams/repository.py)."""

    async def named(self, name: str) -> Team | None: ...
    async def by_pk(self, pk: int) -> Team | None: ...
    async def add(self, public_id: str, name: str) -> Team: ...
    async def set_member(self, team: Team, email: str, role: str) -> None: ...
    async def owner_emails(self, team_pk: int) -> list[str]: ...
    async def add_key(
        self, team: Team, key_id: str, key_hash: str, role: str, permissions: list[str]
    ) -> None: ...
    async def key_by_hash(self, key_hash: str) -> KeyRecord | None: ...
    async def keys(self, team_name: str | None) -> list[KeyListing]: ...
    async def revoke_key(self, key_id: str, channel: str) -> str | None: ...
    async def touch_keys(self, key_ids: list[str]) -> None: ...
    async def spend(self, team_pk: int, bucket: str, *, rate: float, burst: int) -> Decision: ...


class Mailboxes(Protocol):
    """Mailboxes and the domain lock that keeps them off a domain being deleted."""

    async def lock_team_domain(self, team_id: int, name: str) -> LockedDomain | None: ...
    async def add(
        self, *, public_id: str, team_id: int, domain_id: int | None, address: str
    ) -> MailboxRow: ...
    async def holding(self, address: str) -> MailboxRow | None: ...
    async def of_team(self, team_id: int, public_id: str) -> MailboxRow | None: ...
    async def list_of_team(
        self, team_id: int, *, after_id: int, limit: int, domain_public_id: str | None
    ) -> list[MailboxRow]: ...
    async def delete(self, team_id: int, public_id: str) -> MailboxRow | None: ...


class Claims(Protocol):
    """Claims on names another team holds (claims/repository.py)."""

    async def add(self, claim: Claim) -> None: ...
    async def get(self, public_id: str, *, for_update: bool = False) -> Claim | None: ...
    async def by_key(self, team_pk: int, key: str) -> Claim | None: ...
    async def awaiting(self, released_domain_id: str) -> Claim | None: ...
    async def waiting_on(self, holder_domain_id: str) -> list[Claim]: ...
    async def save(self, claim: Claim) -> None: ...


class Work(Protocol):
    """What a use case sees inside one unit of work."""

    @property
    def domains(self) -> Domains: ...

    @property
    def teams(self) -> Teams: ...

    @property
    def mailboxes(self) -> Mailboxes: ...

    @property
    def claims(self) -> Claims: ...

    async def emit(self, *events: Event) -> None:
        """Publish the events if, and only if, the unit of work commits (the outbox)."""

    async def first_sight(self, consumer: str, event: Event) -> bool:
        """Whether `consumer` sees `event` for the first time (the inbox); a redelivery is not."""


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Work]: ...

    def read(self) -> AbstractAsyncContextManager[Work]: ...


class PostgresWork:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._domains = DomainRepository(conn)
        self._teams = TeamRepository(conn)
        self._mailboxes = MailboxRepository(conn)
        self._claims = ClaimRepository(conn)

    @property
    def domains(self) -> Domains:
        return self._domains

    @property
    def teams(self) -> Teams:
        return self._teams

    @property
    def mailboxes(self) -> Mailboxes:
        return self._mailboxes

    @property
    def claims(self) -> Claims:
        return self._claims

    async def emit(self, *events: Event) -> None:
        await outbox.add(self._conn, *events)

    async def first_sight(self, consumer: str, event: Event) -> bool:
        return await inbox.claim(self._conn, consumer, event)


class PostgresUnitOfWork:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Work]:
        async with self._db.transaction() as conn:
            yield PostgresWork(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Work]:
        async with self._db.connection() as conn:
            yield PostgresWork(conn)
