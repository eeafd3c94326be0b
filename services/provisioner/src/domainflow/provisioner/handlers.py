"""The provisioner's handlers: record a saga per request, run sagas in turn, recover orphans.

A request only records its saga (with the inbox claim, in one transaction) and wakes the
dispatcher: under a burst, the queue of work is the `sagas` table, not RabbitMQ's prefetch.
The dispatcher of each replica runs up to `saga.concurrency` sagas at once and
claims the next ones in turn order: a team's burst takes consecutive turns, and a team
arriving later starts at the turn being served, so teams interleave; within a team, sagas
run in arrival order. A few sagas in flight are enough to keep SES's budget busy. A quiet
team's saga (nothing else of its team unfinished) waits for none of them: it starts at
once in room of its own (`saga.quiet_room`), and its SES calls are served ahead of the
queued calls of teams with a backlog (`quiet_caller`), so it is provisioned in about as
many seconds as it makes SES calls.

Running a saga: claim it under a lease (renewed while it runs), then loop: persist the
intent, call the mail server or SES, persist the outcome. The final state and the result
event commit in one transaction (the outbox relays the event). A replica that dies
anywhere in between leaves its lease to expire; the dispatcher of any replica then
claims the saga and carries on from the last persisted state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
from botocore.exceptions import BotoCoreError, EndpointConnectionError

from domainflow.contracts import (
    DeletionRequested,
    DomainMode,
    DomainRequested,
    Event,
    ReceivingRequested,
)
from domainflow.kit import inbox, outbox, tracing
from domainflow.kit.aws import SesError
from domainflow.kit.database import Connection, Database
from domainflow.kit.logging import get_logger
from domainflow.kit.messaging import PoisonEventError
from domainflow.kit.ses_budget import quiet_caller
from domainflow.provisioner.adapters import repository
from domainflow.provisioner.adapters.repository import Claimed, LeaseLostError
from domainflow.provisioner.domain import (
    DoStep,
    Finish,
    Idle,
    ProvisioningSaga,
    SagaKind,
    SagaState,
    Step,
    UndoStep,
    backoff,
    finish,
    next_action,
    refusal,
    restarted,
    result_events,
    step_failed,
    step_started,
    step_succeeded,
    undo_started,
    undo_succeeded,
)
from domainflow.provisioner.settings import ProvisionerSettings

log = get_logger(__name__)

CONSUMER = "provisioner"


class MailServerPort(Protocol):
    async def add_domain(self, domain: str, *, live: bool) -> None: ...
    async def remove_domain(self, domain: str) -> None: ...


class SesPort(Protocol):
    async def create_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> list[str]: ...
    async def set_mail_from(
        self, domain: str, mail_from_domain: str, region: str, *, account: str | None = None
    ) -> None: ...
    async def delete_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> None: ...


class StepError(Exception):
    """An outside call failed: may trying again help, and could the call have taken effect?

    `message` holds the outside system's own words (for the log and operators);
    `error_class` names the kind of failure without them (for clients)."""

    def __init__(
        self, message: str, *, retryable: bool, no_effect: bool = False, error_class: str
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.no_effect = no_effect
        self.error_class = error_class


# Failures of the mail platform's database that pass: connection loss, failover, contention.
_TRANSIENT_POSTGRES = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InterfaceError,
)


#: SES error codes after which the request may still have been carried out (server-side
#: failures and timeouts); any other answer is a plain refusal that changed nothing.
_SES_IN_DOUBT = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "ReadTimeout",
        "ConnectionClosed",
        "ConnectionError",
        "Timeout",
    }
)


def classify(exc: BaseException, step: Step) -> StepError:
    """Turn whatever an adapter raised into a sentence a person can act on, and a verdict."""
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, SesError):
        # An earlier call of the step (the identity's creation) took effect: whatever the
        # later call's failure says, there is something to undo.
        return StepError(
            f"Amazon SES answered {exc.code}: {exc.message}",
            retryable=exc.retryable,
            no_effect=not exc.took_effect and exc.code not in _SES_IN_DOUBT,
            error_class=f"ses:{_code(exc.code)}",
        )
    system, prefix = (
        ("the mail server's database", "mailserver")
        if step is Step.MAILSERVER
        else ("Amazon SES", "ses")
    )
    if isinstance(exc, TimeoutError):
        return StepError(
            f"{system} did not answer in time", retryable=True, error_class=f"{prefix}:timeout"
        )
    if isinstance(exc, ConnectionRefusedError | EndpointConnectionError):
        return StepError(
            f"{system} is unreachable ({exc})",
            retryable=True,
            no_effect=True,
            error_class=f"{prefix}:unreachable",
        )
    # BotoCoreError: connection failures the SES adapter did not wrap.
    if isinstance(exc, (*_TRANSIENT_POSTGRES, OSError, BotoCoreError)):
        return StepError(
            f"{system} is unreachable ({exc})",
            retryable=True,
            error_class=f"{prefix}:unreachable",
        )
    if isinstance(exc, asyncpg.PostgresError):  # the statement failed and rolled back
        return StepError(
            f"{system} refused the change ({exc})",
            retryable=False,
            no_effect=True,
            error_class=f"{prefix}:refused:{_code(type(exc).__name__)}",
        )
    return StepError(
        f"unexpected {type(exc).__name__}: {exc}",
        retryable=False,
        error_class=f"{prefix}:unexpected:{_code(type(exc).__name__)}",
    )


def _code(raw: str) -> str:
    """An error code as a client may see it: a short identifier, nothing else."""
    return "".join(c for c in raw if c.isascii() and (c.isalnum() or c in "._-"))[:64] or "unknown"


class SagaRunner:
    """Handlers for the provisioner's two events, the saga loop, and the dispatcher."""

    def __init__(
        self,
        db: Database,
        mailserver: MailServerPort,
        ses: SesPort,
        settings: ProvisionerSettings,
        *,
        renewal_pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        # How the lease keeper waits between renewals: a timer here, the test's hand in the
        # tests that decide when a renewal happens.
        self._renewal_pause = renewal_pause
        self._mailserver = mailserver
        self._ses = ses
        self._settings = settings
        self._lease = settings.saga.lease_seconds
        self._running: set[asyncio.Task[None]] = set()
        self._running_quiet: set[asyncio.Task[None]] = set()  # in the quiet room
        self._ended = 0  # sagas this replica ran to an end (or a stop), counted
        # Set when a saga is recorded or one finishes: the dispatcher looks again at once.
        self._wake = asyncio.Event()

    # --- events ---------------------------------------------------------------------------

    async def on_domain_requested(self, event: DomainRequested) -> None:
        """Provision the domain on the mail server and SES, all or nothing."""
        await self._record(
            event,
            SagaKind.PROVISION,
            mail_from_domain=event.mail_from_domain,
            receives=event.mode is DomainMode.SEND_RECEIVE,
        )

    async def on_receiving_requested(self, event: ReceivingRequested) -> None:
        """The domain is to receive mail now (its ownership is proven, and it is, or was just
        upgraded to, send and receive): have the mail server accept mail for it. A saga like
        the others, so it waits for the domain's earlier sagas and a later deletion waits for
        it."""
        await self._record(event, SagaKind.RECEIVE)

    async def on_deletion_requested(self, event: DeletionRequested) -> None:
        """Remove the domain from SES and the mail server.

        If the domain's provisioning saga is still unfinished, this saga waits its turn
        (sagas of one domain name run oldest first) and then removes whatever the
        provisioning left: nothing if it rolled back, everything if it completed. Cutting
        into a running provisioning instead would race its in-flight calls.
        """
        await self._record(event, SagaKind.DEPROVISION)

    async def _record(
        self,
        event: DomainRequested | ReceivingRequested | DeletionRequested,
        kind: SagaKind,
        *,
        mail_from_domain: str | None = None,
        receives: bool = True,
    ) -> None:
        """Record the saga an event asks for (once: a redelivery finds it) and wake the
        dispatcher, which runs it in its turn. An event no saga could ever carry out is
        refused as poison: parked with its reason, nothing recorded."""
        refused = refusal(event.domain, event.region, mail_from_domain)
        if refused is not None:
            raise PoisonEventError(
                "unprocessable", f"{event.TYPE} for {event.domain_id}: {refused}"
            )
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return  # redelivered: the saga exists already
            saga_id = await self._open(
                conn,
                event,
                ProvisioningSaga.start(
                    kind=kind,
                    domain_id=event.domain_id,
                    team_id=event.team_id,
                    domain=event.domain,
                    region=event.region,
                    mail_from_domain=mail_from_domain,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                    max_attempts=self._settings.saga.step_attempts,
                    receives=receives,
                    # A receive saga makes no SES call: its event names no account.
                    ses_account=getattr(event, "ses_account", None),
                ),
            )
        if saga_id is not None:
            self._wake.set()

    async def _open(self, conn: Connection, event: Event, saga: ProvisioningSaga) -> int | None:
        """Insert the saga; a second request for the same domain id and kind reuses the first.

        A finished saga answers the new request with its result again (the requester may
        have missed it); an unfinished one will answer when it finishes.
        """
        if saga.kind is SagaKind.DEPROVISION and await repository.provisioned_again(
            conn, saga.domain, saga.domain_id
        ):
            # An operator released the name and a team added it again since: SES and the
            # mail server hold it for that team now, and none of it is this domain's.
            await outbox.add(conn, *result_events(saga, SagaState.COMPLETED, answering=event))
            log.info("saga.name_provisioned_again", domain=saga.domain, domain_id=saga.domain_id)
            return None
        saga_id = await repository.insert(conn, saga)
        if saga_id is not None:
            log.info("saga.started", saga_id=saga_id, kind=saga.kind, domain=saga.domain)
            return saga_id
        found = await repository.find(conn, saga.domain_id, saga.kind)
        if found is None:  # pragma: no cover - the conflicting row cannot vanish in this tx
            return None
        existing_id, existing = found
        if existing.state is SagaState.NEEDS_OPERATOR and existing.kind is SagaKind.DEPROVISION:
            # Deleting again (an operator's release, once the cause is mended): carry on.
            await repository.restart(conn, existing_id, restarted(existing))
            log.info("saga.restarted", saga_id=existing_id, domain=existing.domain)
            return existing_id
        if existing.finished:
            await outbox.add(conn, *result_events(existing, existing.state, answering=event))
            log.info("saga.answered_again", saga_id=existing_id, state=existing.state)
            return None
        return existing_id

    # --- running a saga -------------------------------------------------------------------

    async def run_saga(self, saga_id: int) -> SagaState | None:
        """Run the saga to its end if this replica can claim it; None if it cannot."""
        async with self._db.transaction() as conn:
            claimed = await repository.claim(conn, saga_id, self._lease)
        if claimed is None:
            return None
        return await self._drive(claimed)

    async def _drive(self, claimed: Claimed) -> SagaState:
        keeper = asyncio.create_task(self._keep_lease(claimed))
        try:
            # The saga's SES calls belong to the trace of the request that asked for it, and
            # a quiet team's go ahead of the calls of teams with a backlog.
            with (
                quiet_caller(claimed.quiet),
                tracing.continuing(
                    claimed.trace,
                    f"saga {claimed.saga.kind.value}",
                    {
                        "domainflow.saga.id": claimed.saga_id,
                        "domainflow.domain_id": claimed.saga.domain_id,
                    },
                ),
            ):
                return await self._loop(claimed)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, claimed: Claimed) -> None:
        while True:
            await self._renewal_pause(self._lease / 3)
            try:
                async with self._db.transaction() as conn:
                    if not await repository.renew(conn, claimed, self._lease):
                        log.warning("saga.lease_lost", saga_id=claimed.saga_id)
                        return  # the next save raises LeaseLostError
            except Exception:  # the database blinked; the next tick tries again
                log.exception("saga.lease_renewal_failed", saga_id=claimed.saga_id)

    async def _save(
        self, claimed: Claimed, saga: ProvisioningSaga, *events: Event, release: bool = False
    ) -> None:
        async with self._db.transaction() as conn:
            await repository.save(conn, claimed, saga, lease_seconds=self._lease, release=release)
            await outbox.add(conn, *events)

    async def _loop(self, claimed: Claimed) -> SagaState:
        saga = claimed.saga
        s = self._settings.saga
        while True:
            action = next_action(saga)
            if isinstance(action, Idle):
                return saga.state
            if isinstance(action, Finish):
                saga = finish(saga, action)
                await self._save(claimed, saga, *action.events, release=True)
                log.info(
                    "saga.finished",
                    saga_id=claimed.saga_id,
                    correlation_id=saga.correlation_id,
                    kind=saga.kind,
                    domain=saga.domain,
                    state=saga.state,
                    failed_step=saga.failed_step,
                    error=saga.error,
                )
                return saga.state
            if action.retry:
                await asyncio.sleep(
                    backoff(
                        action.retry,
                        base=s.step_backoff,
                        ceiling=s.step_backoff_max,
                    )
                )
            undo = isinstance(action, UndoStep)
            step = action.step
            saga = undo_started(saga, step) if undo else step_started(saga, step)
            await self._save(claimed, saga)  # intent, before the call
            # SES calls are bounded one by one inside the adapter: a step queued for its
            # SES slot behind a burst has not been tried, so it cannot have timed out.
            timeout = s.step_timeout if step is Step.MAILSERVER else None
            try:
                tokens = await asyncio.wait_for(self._call(saga, action), timeout=timeout)
            except Exception as exc:  # every failure becomes a saga transition
                failure = classify(exc, step)
                saga = step_failed(
                    saga,
                    step,
                    failure.message,
                    retryable=failure.retryable,
                    no_effect=failure.no_effect,
                    error_class=failure.error_class,
                    undo_attempts=s.undo_attempts,
                )
                log.warning(
                    "saga.step_failed",
                    saga_id=claimed.saga_id,
                    correlation_id=saga.correlation_id,
                    kind=saga.kind,
                    domain=saga.domain,
                    step=step,
                    undo=undo,
                    attempts=saga.attempts,
                    retryable=failure.retryable,
                    no_effect=failure.no_effect,
                    error=failure.message,
                    error_class=failure.error_class,
                    state=saga.state,
                )
                if saga.state is SagaState.NEEDS_OPERATOR:
                    events = result_events(saga, saga.state)
                    await self._save(claimed, saga, *events, release=True)
                    log.error(
                        "saga.needs_operator",
                        saga_id=claimed.saga_id,
                        correlation_id=saga.correlation_id,
                        kind=saga.kind,
                        domain=saga.domain,
                        step=step,
                        error_class=failure.error_class,
                        error=failure.message,
                        attempts=saga.attempts,
                    )
                    return saga.state
            else:
                saga = undo_succeeded(saga, step) if undo else step_succeeded(saga, step, tokens)
                log.info(
                    "saga.step_done", saga_id=claimed.saga_id, kind=saga.kind, step=step, undo=undo
                )
            await self._save(claimed, saga)  # outcome, after the call

    async def _call(self, saga: ProvisioningSaga, action: DoStep | UndoStep) -> list[str] | None:
        """The outside call for one action; SES's identity creation returns the DKIM tokens."""
        step = action.step
        removing = isinstance(action, UndoStep) or saga.kind is SagaKind.DEPROVISION
        if step is Step.MAILSERVER:
            if removing:
                await self._mailserver.remove_domain(saga.domain)
            else:
                # Provisioning holds the name without Postfix accepting mail for it; the
                # receive saga, asked for once ownership is proven, makes it live.
                await self._mailserver.add_domain(saga.domain, live=saga.kind is SagaKind.RECEIVE)
        elif step is Step.SES_IDENTITY:
            if removing:
                await self._ses.delete_identity(saga.domain, saga.region, account=saga.ses_account)
            else:
                return await self._ses.create_identity(
                    saga.domain, saga.region, account=saga.ses_account
                )
        elif not removing and saga.mail_from_domain is not None:
            await self._ses.set_mail_from(
                saga.domain, saga.mail_from_domain, saga.region, account=saga.ses_account
            )
        # Undoing MAIL FROM needs no call: deleting the identity, next, takes it along.
        return None

    # --- dispatching -----------------------------------------------------------------------

    async def dispatch_loop(self) -> None:
        """Run the sagas waiting their turn, as they come and as running ones finish.

        Also takes over, at every `saga.recovery_interval`, sagas whose replica died
        (their lease ran out) and sagas another replica recorded but had no room for.
        Cancelling the loop stops the sagas it started; their leases run out and another
        replica carries on from the last persisted state.
        """
        try:
            while True:
                self._wake.clear()
                try:
                    await self.dispatch_once()
                except Exception:
                    log.exception("saga.dispatch_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=self._settings.saga.recovery_interval
                    )
        finally:
            await self.close()

    async def dispatch_once(self) -> int:
        """Claim runnable sagas, fairly between teams, up to the free room, and start them:
        quiet teams' sagas in the quiet room first, then any in the shared room."""
        s = self._settings.saga
        quiet_free = s.quiet_room - len(self._running_quiet)
        free = s.concurrency - (len(self._running) - len(self._running_quiet))
        async with self._db.transaction() as conn:
            quiet = await repository.claim_next(conn, self._lease, quiet_free, quiet_only=True)
            shared = await repository.claim_next(conn, self._lease, free)
        for c in [*quiet, *shared]:
            log.info(
                "saga.dispatched",
                saga_id=c.saga_id,
                kind=c.saga.kind,
                domain=c.saga.domain,
                team_id=c.saga.team_id,
                state=c.saga.state,
                attempts=c.saga.attempts,
                quiet=c.quiet,
            )
            task = asyncio.create_task(self._run_claimed(c), name=f"saga-{c.saga_id}")
            self._running.add(task)
            if c in quiet:
                self._running_quiet.add(task)
            task.add_done_callback(self._finished)
        return len(quiet) + len(shared)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._ended += 1
        self._running.discard(task)
        self._running_quiet.discard(task)
        self._wake.set()  # room for the next saga, and maybe the next of the same name

    async def run_pending(self) -> None:
        """Run every saga that may run now to its end, then return (tools and tests)."""
        while True:
            ended = self._ended
            started = await self.dispatch_once()
            if not self._running:
                # A saga that ended while the claim was under way made room it did not see.
                if not started and self._ended == ended:
                    return
                continue
            await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)

    async def _run_claimed(self, claimed: Claimed) -> None:
        # The saga is durable; if running it fails here, a later dispatch finishes it.
        try:
            await self._drive(claimed)
        except LeaseLostError:
            log.warning("saga.lease_lost", saga_id=claimed.saga_id)
        except Exception:
            log.exception("saga.run_failed", saga_id=claimed.saga_id)

    async def close(self) -> None:
        """Stop the sagas this replica runs (their leases let another replica go on)."""
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
