"""The verifier's consumers: keep the schedule in step with the api, and verify on request.

The verifier reports outcomes only; the api's state machine decides pending, verified or
failed and counts failures. Each handler claims its event in the inbox in the same
transaction as its effect, and emits through the outbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from domainflow.contracts import (
    ClaimChecked,
    ClaimRequested,
    DomainDeleted,
    DomainStatusChanged,
    NamedRecord,
    RecordCheck,
    VerificationCompleted,
    VerificationTrigger,
    VerifyRequested,
)
from domainflow.kit import inbox, outbox
from domainflow.kit.database import Database
from domainflow.kit.logging import get_logger
from domainflow.verifier.adapters import repository
from domainflow.verifier.probe import DomainProbe
from domainflow.verifier.schedule import place

log = get_logger(__name__)

CONSUMER = "verifier"


#: Both teams' ownership TXT of a claimed name, judged (`dns_probe.probe_claim`).
ClaimCheck = Callable[[NamedRecord, NamedRecord], Awaitable[tuple[RecordCheck, RecordCheck]]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class VerifierHandlers:
    def __init__(
        self,
        db: Database,
        probe: DomainProbe,
        *,
        reverify_interval: timedelta,
        clock: Callable[[], datetime] = _utcnow,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        self._db = db
        self._claim_check = claim_check
        self._probe = probe
        self._interval = reverify_interval
        self._clock = clock

    async def on_status_changed(self, event: DomainStatusChanged) -> None:
        """Pending and verified: re-checked every interval; failed: wait; deleting: never again."""
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return
            await repository.lock_domain(conn, event.domain_id)
            current = await repository.load(conn, event.domain_id)
            placement = place(
                current, event.new_status, event.occurred_at, self._clock(), self._interval
            )
            if placement is None:
                log.info("schedule.stale_event", status=event.new_status.value)
                return
            await repository.save_status(conn, event, placement)
            log.info(
                "schedule.placed",
                status=placement.status.value,
                next_check_at=placement.next_check_at.isoformat()
                if placement.next_check_at
                else None,
            )

    async def on_domain_deleted(self, event: DomainDeleted) -> None:
        """The domain is gone everywhere: never check it again."""
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return
            await repository.lock_domain(conn, event.domain_id)
            await repository.remove(
                conn, event.domain_id, event.team_id, event.domain, event.occurred_at
            )

    async def on_verify_requested(self, event: VerifyRequested) -> None:
        """Probe now, record it, and answer with `VerificationCompleted(trigger=manual)`.

        The probe runs outside any transaction (SES may make it wait for a slot); the inbox
        claim, history row, schedule update and answer then commit together, so a redelivery
        that raced this one probes in vain but answers nothing twice.
        """
        async with self._db.pool.acquire() as conn:
            if await repository.seen(conn, CONSUMER, event.event_id):
                return
        verdict = await self._probe.check(
            event.domain, event.region, event.records, account=event.ses_account
        )
        answer = VerificationCompleted(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            team_id=event.team_id,
            domain_id=event.domain_id,
            domain=event.domain,
            trigger=VerificationTrigger.MANUAL,
            outcome=verdict.outcome,
            ses_dkim_status=verdict.ses_dkim_status,
            checks=verdict.checks,
            checked_at=verdict.checked_at,
            warnings=verdict.warnings,
            ses_identity=verdict.ses_identity,
        )
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return
            await repository.record_check(conn, answer)
            await repository.note_manual_check(
                conn,
                event.domain_id,
                event.region,
                event.records,
                verdict.checked_at,
                event.ses_account,
            )
            await outbox.add(conn, answer)
        log.info("verification.completed", trigger="manual", outcome=verdict.outcome.value)

    async def on_claim_requested(self, event: ClaimRequested) -> None:
        """Look up the claimed name's ownership TXT now and answer with both teams' checks.

        Nothing is scheduled or recorded for the name: the claim is the api's to decide.
        """
        if self._claim_check is None:
            raise RuntimeError("this verifier was built without a claim check")
        async with self._db.pool.acquire() as conn:
            if await repository.seen(conn, CONSUMER, event.event_id):
                return
        claimant, holder = await self._claim_check(event.claimant, event.holder)
        answer = ClaimChecked(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            team_id=event.team_id,
            claim_id=event.claim_id,
            domain_id=event.domain_id,
            domain=event.domain,
            claimant=claimant,
            holder=holder,
            checked_at=self._clock(),
        )
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return
            await outbox.add(conn, answer)
        log.info("claim.checked", claimant=claimant.outcome.value, holder=holder.outcome.value)
