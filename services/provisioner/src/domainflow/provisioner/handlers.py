"""The provisioner's handlers: start a saga per request, run it step by step, recover orphans.

Running a saga: claim it under a lease (renewed while it runs), then loop: persist the
intent, call the mail server or SES, persist the outcome. The final state and the result
event commit in one transaction (the outbox relays the event). A replica that dies
anywhere in between leaves its lease to expire; the recovery sweep of any replica then
claims the saga and carries on from the last persisted state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
from botocore.exceptions import BotoCoreError, EndpointConnectionError

from domainflow.contracts import DeletionRequested, DomainRequested, Event
from domainflow.kit import inbox, outbox
from domainflow.kit.aws import SesError
from domainflow.kit.database import Connection, Database
from domainflow.kit.logging import get_logger
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
    async def add_domain(self, domain: str) -> None: ...
    async def remove_domain(self, domain: str) -> None: ...


class SesPort(Protocol):
    async def create_identity(self, domain: str, region: str) -> list[str]: ...
    async def set_mail_from(self, domain: str, mail_from_domain: str, region: str) -> None: ...
    async def delete_identity(self, domain: str, region: str) -> None: ...


class StepError(Exception):
    """An outside call failed: may trying again help, and could the call have taken effect?"""

    def __init__(self, message: str, *, retryable: bool, no_effect: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.no_effect = no_effect


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
        return StepError(
            f"Amazon SES answered {exc.code}: {exc.message}",
            retryable=exc.retryable,
            no_effect=exc.code not in _SES_IN_DOUBT,
        )
    system = "the mail server's database" if step is Step.MAILSERVER else "Amazon SES"
    if isinstance(exc, TimeoutError):
        return StepError(f"{system} did not answer in time", retryable=True)
    if isinstance(exc, ConnectionRefusedError | EndpointConnectionError):
        return StepError(f"{system} is unreachable ({exc})", retryable=True, no_effect=True)
    # BotoCoreError: connection failures the SES adapter did not wrap.
    if isinstance(exc, (*_TRANSIENT_POSTGRES, OSError, BotoCoreError)):
        return StepError(f"{system} is unreachable ({exc})", retryable=True)
    if isinstance(exc, asyncpg.PostgresError):  # the statement failed and rolled back
        return StepError(f"{system} refused the change ({exc})", retryable=False, no_effect=True)
    return StepError(f"unexpected {type(exc).__name__}: {exc}", retryable=False)


class SagaRunner:
    """Handlers for the provisioner's two events, the saga loop, and the recovery sweep."""

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
        self._lease = settings.provisioner_lease_seconds
        self._recovering: set[asyncio.Task[None]] = set()

    # --- events ---------------------------------------------------------------------------

    async def on_domain_requested(self, event: DomainRequested) -> None:
        """Provision the domain on the mail server and SES, all or nothing."""
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return  # redelivered: the saga exists already
            saga_id = await self._open(
                conn,
                event,
                ProvisioningSaga.start(
                    kind=SagaKind.PROVISION,
                    domain_id=event.domain_id,
                    team_id=event.team_id,
                    domain=event.domain,
                    region=event.region,
                    mail_from_domain=event.mail_from_domain,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                    max_attempts=self._settings.provisioner_step_attempts,
                ),
            )
        if saga_id is not None:
            await self._run_logged(saga_id)

    async def on_deletion_requested(self, event: DeletionRequested) -> None:
        """Remove the domain from SES and the mail server.

        If the domain's provisioning saga is still unfinished, this saga waits its turn
        (sagas of one domain name run oldest first) and then removes whatever the
        provisioning left: nothing if it rolled back, everything if it completed. Cutting
        into a running provisioning instead would race its in-flight calls.
        """
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return
            saga_id = await self._open(
                conn,
                event,
                ProvisioningSaga.start(
                    kind=SagaKind.DEPROVISION,
                    domain_id=event.domain_id,
                    team_id=event.team_id,
                    domain=event.domain,
                    region=event.region,
                    mail_from_domain=None,
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                    max_attempts=self._settings.provisioner_step_attempts,
                ),
            )
        if saga_id is not None:
            await self._run_logged(saga_id)

    async def _open(self, conn: Connection, event: Event, saga: ProvisioningSaga) -> int | None:
        """Insert the saga; a second request for the same domain id and kind reuses the first.

        A finished saga answers the new request with its result again (the requester may
        have missed it); an unfinished one will answer when it finishes.
        """
        saga_id = await repository.insert(conn, saga)
        if saga_id is not None:
            log.info("saga.started", saga_id=saga_id, kind=saga.kind, domain=saga.domain)
            return saga_id
        found = await repository.find(conn, saga.domain_id, saga.kind)
        if found is None:  # pragma: no cover - the conflicting row cannot vanish in this tx
            return None
        existing_id, existing = found
        if existing.finished:
            await outbox.add(conn, *result_events(existing, existing.state, answering=event))
            log.info("saga.answered_again", saga_id=existing_id, state=existing.state)
            return None
        return existing_id

    # --- running a saga -------------------------------------------------------------------

    async def _run_logged(self, saga_id: int) -> None:
        # The saga is durable; if running it fails here, the recovery sweep finishes it.
        # Raising would only make the broker redeliver an event the inbox already holds.
        try:
            await self.run_saga(saga_id)
        except LeaseLostError:
            log.warning("saga.lease_lost", saga_id=saga_id)
        except Exception:
            log.exception("saga.run_failed", saga_id=saga_id)

    async def run_saga(self, saga_id: int) -> SagaState | None:
        """Run the saga to its end if this replica can claim it; None if it cannot."""
        async with self._db.transaction() as conn:
            claimed = await repository.claim(conn, saga_id, self._lease)
        if claimed is None:
            return None
        state = await self._drive(claimed)
        await self._hand_over(claimed.saga.domain)
        return state

    async def _hand_over(self, domain: str) -> None:
        """Start the next saga of the same domain name at once, instead of at the next sweep."""
        async with self._db.transaction() as conn:
            waiting = await repository.next_waiting(conn, domain)
        if waiting is not None:
            await self.run_saga(waiting)

    async def _drive(self, claimed: Claimed) -> SagaState:
        keeper = asyncio.create_task(self._keep_lease(claimed))
        try:
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
        s = self._settings
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
                        base=s.provisioner_step_backoff,
                        ceiling=s.provisioner_step_backoff_max,
                    )
                )
            undo = isinstance(action, UndoStep)
            step = action.step
            saga = undo_started(saga, step) if undo else step_started(saga, step)
            await self._save(claimed, saga)  # intent, before the call
            try:
                tokens = await asyncio.wait_for(
                    self._call(saga, action), timeout=s.provisioner_step_timeout
                )
            except Exception as exc:  # every failure becomes a saga transition
                failure = classify(exc, step)
                saga = step_failed(
                    saga,
                    step,
                    failure.message,
                    retryable=failure.retryable,
                    no_effect=failure.no_effect,
                )
                log.warning(
                    "saga.step_failed",
                    saga_id=claimed.saga_id,
                    kind=saga.kind,
                    domain=saga.domain,
                    step=step,
                    undo=undo,
                    attempts=saga.attempts,
                    retryable=failure.retryable,
                    no_effect=failure.no_effect,
                    error=failure.message,
                    state=saga.state,
                )
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
                await self._mailserver.add_domain(saga.domain)
        elif step is Step.SES_IDENTITY:
            if removing:
                await self._ses.delete_identity(saga.domain, saga.region)
            else:
                return await self._ses.create_identity(saga.domain, saga.region)
        elif not removing and saga.mail_from_domain is not None:
            await self._ses.set_mail_from(saga.domain, saga.mail_from_domain, saga.region)
        # Undoing MAIL FROM needs no call: deleting the identity, next, takes it along.
        return None

    # --- recovery -------------------------------------------------------------------------

    async def recovery_loop(self) -> None:
        """At start and every interval: take over sagas whose replica died, and run them.

        Cancelling the loop stops the sagas it started; their leases run out and another
        replica carries on from the last persisted state.
        """
        try:
            while True:
                try:
                    await self.recover_once()
                except Exception:
                    log.exception("saga.recovery_failed")
                await asyncio.sleep(self._settings.provisioner_recovery_interval)
        finally:
            await self.close()

    async def recover_once(self) -> int:
        """Claim unfinished, unheld sagas (up to the free slots) and start running them."""
        free = self._settings.provisioner_recovery_batch - len(self._recovering)
        async with self._db.transaction() as conn:
            claimed = await repository.claim_due(conn, self._lease, free)
        for c in claimed:
            log.info(
                "saga.recovering",
                saga_id=c.saga_id,
                kind=c.saga.kind,
                domain=c.saga.domain,
                state=c.saga.state,
                attempts=c.saga.attempts,
            )
            task = asyncio.create_task(self._recover(c), name=f"saga-{c.saga_id}")
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)
        return len(claimed)

    async def _recover(self, claimed: Claimed) -> None:
        try:
            await self._drive(claimed)
            await self._hand_over(claimed.saga.domain)
        except LeaseLostError:
            log.warning("saga.lease_lost", saga_id=claimed.saga_id)
        except Exception:
            log.exception("saga.run_failed", saga_id=claimed.saga_id)

    async def close(self) -> None:
        """Stop the sagas the recovery sweep started."""
        for task in list(self._recovering):
            task.cancel()
        for task in list(self._recovering):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
