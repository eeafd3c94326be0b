"""The api's consumers: answers from the provisioner and verifier drive the state machine.

Each handler: claim the event in the inbox, lock the domain, ask the pure state machine,
save, and emit `DomainStatusChanged` (with the state other services need) through the
outbox, all in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from domainflow.api.adapters import repository
from domainflow.api.adapters.repository import DomainRow
from domainflow.api.domain import state as sm
from domainflow.api.domain import timeline
from domainflow.api.domain.records import RecordSettings, derive_records
from domainflow.api.settings import ApiSettings
from domainflow.contracts import (
    DkimStatus,
    DnsRecords,
    DomainDeleted,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainStatus,
    DomainStatusChanged,
    Event,
    ProvisioningRolledBack,
    RecordCheck,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from domainflow.kit import inbox, outbox
from domainflow.kit.database import Connection, Database
from domainflow.kit.logging import get_logger

log = get_logger(__name__)

CONSUMER = "api"


def record_settings(settings: ApiSettings) -> RecordSettings:
    return RecordSettings(
        mx_target=settings.mx_target,
        mx_priority=settings.mx_priority,
        spf_includes=tuple(settings.spf_includes),
        dmarc_policy=settings.dmarc_policy,
        verification_prefix=settings.verification_prefix,
        verification_value_prefix=settings.verification_value_prefix,
    )


def records_of(row: DomainRow, settings: ApiSettings) -> DnsRecords:
    return derive_records(
        row.domain,
        row.team_public_id,
        list(row.dkim_tokens),
        row.region,
        record_settings(settings),
        mail_from_domain=row.mail_from_domain,
    )


def state_of(row: DomainRow) -> sm.DomainState:
    return sm.DomainState(
        status=DomainStatus(row.status),
        consecutive_failures=row.consecutive_failures,
        degraded=row.degraded,
    )


async def status_changed(
    conn: Connection,
    settings: ApiSettings,
    row: DomainRow,
    old: DomainStatus | None,
    move: sm.Transition,
    reason: str,
    *,
    correlation_id: str,
    causation_id: uuid.UUID | None,
    checks: list[RecordCheck] | None = None,
) -> DomainStatusChanged:
    """The event every status move publishes, with the state other services act on."""
    new = move.new_state.status
    return DomainStatusChanged(
        correlation_id=correlation_id,
        causation_id=causation_id,
        team_id=row.team_public_id,
        domain_id=row.public_id,
        domain=row.domain,
        region=row.region,
        old_status=old,
        new_status=new,
        reason=reason,
        consecutive_failures=move.new_state.consecutive_failures,
        notify_owners=move.notify_owners,
        records=records_of(row, settings) if new != DomainStatus.DELETED else None,
        checks=checks or [],
        ses_dkim_status=DkimStatus(row.ses_dkim_status),
        owner_emails=await repository.owner_emails(conn, row.team_id),
    )


class ApiHandlers:
    def __init__(self, db: Database, settings: ApiSettings) -> None:
        self._db = db
        self._settings = settings

    async def _apply(
        self,
        event: Event,
        domain_id: str,
        move_input: sm.DomainInput,
        reason: str,
        *,
        checks: list[RecordCheck] | None = None,
        answers: uuid.UUID | None = None,
        **fields: Any,
    ) -> None:
        """Claim, load, transition, save, emit: the shape every answer takes.

        `answers` is the VerifyRequested this event answers: the request waiting on it is
        released in the same transaction, so it never reads a half-applied result.
        """
        async with self._db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event):
                return  # redelivered: already applied
            row = await repository.domain_by_public_id(
                conn, domain_id, for_update=True, include_deleted=True
            )
            if row is None:
                log.warning("domain.unknown", domain_id=domain_id)
                return
            old = DomainStatus(row.status)
            before = row
            if answers is not None:
                await self._release_verify_request(conn, domain_id, answers)
            try:
                move = sm.transition(state_of(row), move_input)
            except sm.TransitionRefused as refused:
                log.info("domain.transition_refused", status=row.status, reason=str(refused))
                return
            new_state = move.new_state
            await repository.update_domain(
                conn,
                domain_id,
                status=new_state.status.value,
                consecutive_failures=new_state.consecutive_failures,
                degraded=new_state.degraded,
                **fields,
            )
            row = await repository.domain_by_public_id(conn, domain_id, include_deleted=True)
            assert row is not None
            events: list[Event] = []
            if move.changed_status:
                events.append(
                    await status_changed(
                        conn,
                        self._settings,
                        row,
                        old,
                        move,
                        reason,
                        correlation_id=event.correlation_id,
                        causation_id=event.event_id,
                        checks=checks,
                    )
                )
                log.info("domain.status_changed", old=old.value, new=new_state.status.value)
            if new_state.status == DomainStatus.DELETED and old == DomainStatus.DELETING:
                events.append(
                    DomainDeleted(
                        correlation_id=event.correlation_id,
                        causation_id=event.event_id,
                        team_id=row.team_public_id,
                        domain_id=row.public_id,
                        domain=row.domain,
                    )
                )
            await self._note(conn, event, before, row, move, reason)
            await outbox.add(conn, *events)

    @staticmethod
    async def _note(
        conn: Connection,
        event: Event,
        before: DomainRow,
        after: DomainRow,
        move: sm.Transition,
        reason: str,
    ) -> None:
        """A line on the domain's timeline, when the event changed something to tell."""
        probe = event if isinstance(event, VerificationCompleted) else None
        if not timeline.worth_noting(
            changed_status=move.changed_status,
            asked_for=probe is not None and probe.trigger == VerificationTrigger.MANUAL,
            outcome=after.last_outcome,
            previous_outcome=before.last_outcome,
            failing=timeline.failing_of(after.last_checks),
            previous_failing=timeline.failing_of(before.last_checks),
        ):
            return
        await repository.note_on_timeline(
            conn,
            after.id,
            happening=event.TYPE.removeprefix("domain."),
            status_before=before.status,
            status_after=after.status,
            reason=reason,
            request_id=event.correlation_id,
            outcome=probe.outcome.value if probe else None,
            ses_dkim_status=probe.ses_dkim_status.value
            if probe and probe.ses_dkim_status
            else None,
            checks=[c for c in after.last_checks or () if c.get("outcome") != "pass"]
            if probe
            else None,
        )

    async def on_provisioned(self, event: DomainProvisioned) -> None:
        """The mail server and SES hold the domain: it is pending until its DNS checks pass."""
        await self._apply(
            event,
            event.domain_id,
            sm.Provisioned(),
            "provisioned",
            dkim_tokens=list(event.dkim_tokens),
            mail_from_domain=event.mail_from_domain,
        )

    async def on_rolled_back(self, event: ProvisioningRolledBack) -> None:
        """Provisioning failed and was undone: the domain is gone and a retry starts clean."""
        await self._apply(
            event,
            event.domain_id,
            sm.ProvisioningRolledBack(),
            f"provisioning failed at {event.failed_step}: {event.reason}",
            failure_reason=f"{event.failed_step}: {event.reason}",
            deleted_at=datetime.now(UTC),
        )

    async def on_verification_completed(self, event: VerificationCompleted) -> None:
        """A probe's verdict: passed, failed or inconclusive (which changes nothing)."""
        move_input: sm.DomainInput
        if event.outcome == VerificationOutcome.PASSED:
            move_input = sm.VerificationPassed()
        elif event.outcome == VerificationOutcome.FAILED:
            move_input = sm.VerificationFailed()
        else:
            move_input = sm.VerificationInconclusive()
        fields: dict[str, Any] = {
            "last_checks": [c.model_dump(mode="json") for c in event.checks],
            "last_outcome": event.outcome.value,
            "last_checked_at": event.checked_at,
        }
        if event.ses_dkim_status is not None:
            fields["ses_dkim_status"] = event.ses_dkim_status.value
        if event.outcome == VerificationOutcome.PASSED:
            fields["verified_at"] = event.checked_at
        await self._apply(
            event,
            event.domain_id,
            move_input,
            f"verification {event.outcome.value} ({event.trigger.value})",
            checks=list(event.checks),
            answers=event.causation_id,
            **fields,
        )

    async def _release_verify_request(
        self, conn: Connection, domain_id: str, request_event_id: uuid.UUID
    ) -> None:
        # Only the answer to the request a caller waits on releases it; a scheduled probe
        # landing meanwhile does not.
        await conn.execute(
            "UPDATE domains SET verify_requested_at = NULL, verify_event_id = NULL,"
            " updated_at = now() WHERE public_id = $1 AND verify_event_id = $2",
            domain_id,
            request_event_id,
        )

    async def on_deprovisioned(self, event: DomainDeprovisioned) -> None:
        """Nothing of the domain is left on SES or the mail server: it is gone."""
        await self._apply(
            event,
            event.domain_id,
            sm.Deprovisioned(),
            "deleted",
            deleted_at=datetime.now(UTC),
        )
