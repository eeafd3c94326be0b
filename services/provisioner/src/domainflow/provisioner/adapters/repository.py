"""SQL for sagas: start one, claim it under a lease, save each transition while the lease holds.

A replica holds a saga by writing a fresh `lease_token` and a `leased_until`; every save
names the token, so a replica that lost its lease (it stalled past `leased_until` and
another took over) fails loudly instead of overwriting newer state. Sagas of one domain
name run one at a time, oldest first: a deletion waits for the provisioning before it,
and a retry waits for the rollback before it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import asyncpg

from domainflow.kit import tracing
from domainflow.kit.database import Connection, migration_files
from domainflow.provisioner.domain import (
    ProvisioningSaga,
    SagaKind,
    SagaState,
    Step,
    StepStatus,
)


def migrations() -> list[tuple[str, str]]:
    """The provisioner's own tables (the kit's outbox and inbox come before them)."""
    return migration_files(files("domainflow.provisioner") / "migrations")


class LeaseLostError(RuntimeError):
    """Another replica holds the saga now; this one must stop touching it."""


@dataclass(frozen=True)
class Claimed:
    saga_id: int
    token: uuid.UUID
    saga: ProvisioningSaga
    turn: int = 0
    #: Its team had nothing else unfinished when it was claimed: its SES calls go ahead of
    #: those of teams with a backlog (`domainflow.kit.ses_budget.quiet_caller`).
    quiet: bool = False
    #: The W3C trace context of the delivery that opened the saga (empty: tracing was off).
    trace: dict[str, str] = field(default_factory=dict)


_UNFINISHED = "('running', 'compensating')"

# A saga may run when it is unfinished, nobody holds it, and no older saga of the same
# domain name is unfinished.
_RUNNABLE = f"""
    c.state IN {_UNFINISHED}
    AND (c.leased_until IS NULL OR c.leased_until < now())
    AND NOT EXISTS (
        SELECT 1 FROM sagas e
        WHERE e.domain = c.domain AND e.id < c.id AND e.state IN {_UNFINISHED}
    )
"""


# A new saga's turn: right after its team's last unfinished one, but never before the turn
# being served now (the lowest unfinished turn; with nothing unfinished, after the last
# one). A team's burst takes consecutive turns; a team arriving later starts at the turn
# under way, so it is interleaved with the burst instead of queued behind it.
_NEXT_TURN = f"""
    greatest(
        (SELECT max(turn) + 1 FROM sagas WHERE team_id = $3 AND state IN {_UNFINISHED}),
        coalesce(
            (SELECT min(turn) FROM sagas WHERE state IN {_UNFINISHED}),
            (SELECT max(turn) + 1 FROM sagas),
            0
        )
    )
"""


_TEAM_BACKLOG = f"""
    (SELECT count(*) FROM sagas o WHERE o.team_id = c.team_id AND o.state IN {_UNFINISHED})
"""

# A claimed saga that is its team's only unfinished one: the team is quiet.
_QUIET = f"""
    NOT EXISTS (SELECT 1 FROM sagas o
                WHERE o.team_id = s.team_id AND o.id <> s.id AND o.state IN {_UNFINISHED})
    AS quiet
"""


def _claimed(r: asyncpg.Record, token: uuid.UUID) -> Claimed:
    return Claimed(r["id"], token, saga_from_record(r), r["turn"], r["quiet"], _trace_of(r))


def _steps_json(saga: ProvisioningSaga) -> list[dict[str, str]]:
    return [{"step": s.value, "status": st.value} for s, st in saga.steps]


def saga_from_record(r: asyncpg.Record) -> ProvisioningSaga:
    steps: list[dict[str, Any]] = r["steps"]
    return ProvisioningSaga(
        domain_id=r["domain_id"],
        team_id=r["team_id"],
        domain=r["domain"],
        region=r["region"],
        mail_from_domain=r["mail_from_domain"],
        kind=SagaKind(r["kind"]),
        correlation_id=r["correlation_id"],
        causation_id=r["causation_id"],
        max_attempts=r["max_attempts"],
        state=SagaState(r["state"]),
        steps=tuple((Step(s["step"]), StepStatus(s["status"])) for s in steps),
        dkim_tokens=tuple(r["dkim_tokens"]),
        failed_step=Step(r["failed_step"]) if r["failed_step"] else None,
        error=r["error"],
        error_class=r["error_class"],
        attempts=r["attempts"],
        in_doubt=r["in_doubt"],
        ses_account=r["ses_account"],
    )


async def insert(conn: Connection, saga: ProvisioningSaga) -> int | None:
    """Store a new saga; None if one for the same domain id and kind exists already."""
    context = tracing.trace_context()
    saga_id: int | None = await conn.fetchval(
        f"""
        INSERT INTO sagas (domain_id, kind, team_id, domain, region, mail_from_domain, state,
                           steps, max_attempts, correlation_id, causation_id, turn,
                           traceparent, tracestate, ses_account)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {_NEXT_TURN}, $12, $13, $14)
        ON CONFLICT (domain_id, kind) DO NOTHING
        RETURNING id
        """,
        saga.domain_id,
        saga.kind.value,
        saga.team_id,
        saga.domain,
        saga.region,
        saga.mail_from_domain,
        saga.state.value,
        _steps_json(saga),
        saga.max_attempts,
        saga.correlation_id,
        saga.causation_id,
        context.get(tracing.TRACEPARENT),
        context.get(tracing.TRACESTATE),
        saga.ses_account,
    )
    return saga_id


def _trace_of(record: asyncpg.Record) -> dict[str, str]:
    return {
        header: record[header]
        for header in (tracing.TRACEPARENT, tracing.TRACESTATE)
        if record[header] is not None
    }


async def find(
    conn: Connection, domain_id: str, kind: SagaKind
) -> tuple[int, ProvisioningSaga] | None:
    r = await conn.fetchrow(
        "SELECT * FROM sagas WHERE domain_id = $1 AND kind = $2", domain_id, kind.value
    )
    return None if r is None else (r["id"], saga_from_record(r))


async def load(conn: Connection, saga_id: int) -> ProvisioningSaga | None:
    r = await conn.fetchrow("SELECT * FROM sagas WHERE id = $1", saga_id)
    return None if r is None else saga_from_record(r)


async def claim(conn: Connection, saga_id: int, lease_seconds: float) -> Claimed | None:
    """Take this saga if it may run now; None if finished, held, or waiting its turn."""
    token = uuid.uuid4()
    r = await conn.fetchrow(
        f"""
        UPDATE sagas s
        SET lease_token = $2, leased_until = now() + make_interval(secs => $3), updated_at = now()
        WHERE s.id = (
            SELECT c.id FROM sagas c WHERE c.id = $1 AND {_RUNNABLE}
            FOR UPDATE SKIP LOCKED
        )
        RETURNING s.*, {_QUIET}
        """,
        saga_id,
        token,
        lease_seconds,
    )
    return None if r is None else _claimed(r, token)


async def claim_next(
    conn: Connection, lease_seconds: float, limit: int, *, quiet_only: bool = False
) -> list[Claimed]:
    """Take up to `limit` runnable sagas nobody holds, in turn order.

    Turns interleave teams (see `_NEXT_TURN`): one team's burst of 500 creates does not
    stand in front of another team's single one, and deletes and retries queue alike.
    Within a turn, the team with the least work waiting goes first (a quiet team's single
    create before the next of each bursting team's), then arrival order. `quiet_only`:
    only sagas that are their team's only unfinished one.
    """
    if limit <= 0:
        return []
    token = uuid.uuid4()
    quiet = f"AND {_TEAM_BACKLOG} = 1" if quiet_only else ""
    records = await conn.fetch(
        f"""
        UPDATE sagas s
        SET lease_token = $1, leased_until = now() + make_interval(secs => $2), updated_at = now()
        WHERE s.id IN (
            SELECT c.id FROM sagas c WHERE {_RUNNABLE} {quiet}
            ORDER BY c.turn, {_TEAM_BACKLOG}, c.id LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        RETURNING s.*, {_QUIET}
        """,
        token,
        lease_seconds,
        limit,
    )
    return sorted((_claimed(r, token) for r in records), key=lambda c: (c.turn, c.saga_id))


async def next_waiting(conn: Connection, domain: str) -> int | None:
    """The oldest unfinished saga of `domain`: the one whose turn it is now."""
    saga_id: int | None = await conn.fetchval(
        f"SELECT id FROM sagas WHERE domain = $1 AND state IN {_UNFINISHED} ORDER BY id LIMIT 1",
        domain,
    )
    return saga_id


async def save(
    conn: Connection,
    claimed: Claimed,
    saga: ProvisioningSaga,
    *,
    lease_seconds: float,
    release: bool = False,
) -> None:
    """Write the saga's new state (extending the lease); raise if the lease is gone."""
    updated = await conn.fetchval(
        """
        UPDATE sagas SET
            state = $3, steps = $4, dkim_tokens = $5, failed_step = $6, error = $7,
            attempts = $8, in_doubt = $11, error_class = $12, updated_at = now(),
            finished_at = CASE
                WHEN $3 IN ('completed', 'rolled_back', 'needs_operator') THEN now()
            END,
            lease_token = CASE WHEN $9 THEN NULL ELSE lease_token END,
            leased_until = CASE WHEN $9 THEN NULL ELSE now() + make_interval(secs => $10) END
        WHERE id = $1 AND lease_token = $2
        RETURNING true
        """,
        claimed.saga_id,
        claimed.token,
        saga.state.value,
        _steps_json(saga),
        list(saga.dkim_tokens),
        saga.failed_step.value if saga.failed_step else None,
        saga.error,
        saga.attempts,
        release,
        lease_seconds,
        saga.in_doubt,
        saga.error_class,
    )
    if not updated:
        raise LeaseLostError(f"saga {claimed.saga_id} is no longer held by this replica")


async def provisioned_again(conn: Connection, domain: str, domain_id: str) -> bool:
    """Has another domain id of this name started provisioning after every saga of
    `domain_id` but its removals? (Only an operator's release frees a name that early.)"""
    again: bool = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM sagas n
            WHERE n.domain = $1 AND n.domain_id <> $2 AND n.kind = 'provision'
              AND n.id > coalesce(
                  (SELECT max(id) FROM sagas WHERE domain_id = $2 AND kind <> 'deprovision'), 0)
        )
        """,
        domain,
        domain_id,
    )
    return again


async def restart(conn: Connection, saga_id: int, saga: ProvisioningSaga) -> None:
    """Put a stopped saga back in the queue in `saga`'s state (nobody holds a stopped one)."""
    await conn.execute(
        """
        UPDATE sagas SET state = $2, attempts = $3, failed_step = NULL, error = NULL,
            error_class = NULL, finished_at = NULL, lease_token = NULL, leased_until = NULL,
            updated_at = now()
        WHERE id = $1 AND state = 'needs_operator'
        """,
        saga_id,
        saga.state.value,
        saga.attempts,
    )


@dataclass(frozen=True)
class Stopped:
    """A saga waiting for an operator, as `domainflow doctor` lists it."""

    domain: str
    domain_id: str
    kind: str
    step: str | None
    error_class: str | None
    error: str | None
    stopped_at: Any


async def stopped(conn: Connection, limit: int = 20) -> tuple[int, list[Stopped]]:
    """How many sagas wait for an operator, and the latest `limit` of them."""
    count: int = await conn.fetchval("SELECT count(*) FROM sagas WHERE state = 'needs_operator'")
    rows = await conn.fetch(
        """
        SELECT domain, domain_id, kind, failed_step, error_class, error, updated_at FROM sagas
        WHERE state = 'needs_operator' ORDER BY updated_at DESC LIMIT $1
        """,
        limit,
    )
    return count, [
        Stopped(
            r["domain"],
            r["domain_id"],
            r["kind"],
            r["failed_step"],
            r["error_class"],
            r["error"],
            r["updated_at"],
        )
        for r in rows
    ]


async def renew(conn: Connection, claimed: Claimed, lease_seconds: float) -> bool:
    """Extend the lease; False if another replica took the saga."""
    renewed = await conn.fetchval(
        """
        UPDATE sagas SET leased_until = now() + make_interval(secs => $3)
        WHERE id = $1 AND lease_token = $2
        RETURNING true
        """,
        claimed.saga_id,
        claimed.token,
        lease_seconds,
    )
    return bool(renewed)
