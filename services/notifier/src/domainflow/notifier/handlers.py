"""The notifier's consumer: mail a transition to each owner at most once, then say so.

For each owner: record intent (`sending`, committed), call SES, record the outcome. When every
owner is settled, claim the event in the inbox and emit `NotificationSent` through the outbox in
one transaction, so a redelivery that finds the inbox row does nothing at all. The store behind
those steps is a `NotifierStore` (unit_of_work.py): PostgreSQL in production, memory in tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Protocol

from domainflow.contracts import NotificationRequested, NotificationSent, NotificationSentV1
from domainflow.kit.logging import get_logger
from domainflow.notifier.adapters.ses_outcome import verdict
from domainflow.notifier.domain import (
    LogState,
    SendVerdict,
    Step,
    recipients,
    skip_reason,
    step_for,
)
from domainflow.notifier.messages import Email, compose
from domainflow.notifier.settings import NotifierSettings
from domainflow.notifier.unit_of_work import Delivery, NotifierStore

log = get_logger(__name__)

CONSUMER = "notifier"
#: Inbox key of the transitions already announced: one `notification.sent` per transition,
#: even when the api asks about it again under another event (a registration expiry the
#: watch reports anew after a gap carries the id of its domain and date each time).
ANNOUNCED = "notifier.announced"


class Mailer(Protocol):
    """Sends one email through SES and returns SES's message id (`adapters.ses.SesMailer`)."""

    async def send(
        self,
        sender: str,
        to: str,
        subject: str,
        text: str,
        html: str,
        region: str,
        *,
        transition_id: uuid.UUID,
    ) -> str: ...


class TransitionBusyError(RuntimeError):
    """Another replica is mailing this transition right now; the message comes back later."""


class NotificationDeferredError(RuntimeError):
    """SES refused some recipients for now (throttled, 5xx, unreachable); retried on redelivery."""


class NotifierHandlers:
    def __init__(
        self,
        store: NotifierStore,
        mailer: Mailer,
        settings: NotifierSettings,
        *,
        judge: Callable[[BaseException], SendVerdict] = verdict,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._settings = settings
        self._judge = judge
        #: Deliveries under way, held so that one its message no longer waits for still ends.
        self._in_flight: set[asyncio.Task[None]] = set()

    async def on_notification_requested(self, event: NotificationRequested) -> None:
        """Email the team's owners about a transition the state machine flagged, never twice.

        The api asks (`notification.requested`, internal: the owners' addresses reach no
        subscriber) only for the transitions owners hear of; each mail is keyed by the public
        `domain.status_changed` it is about (`transition_event_id`).

        Why never twice, rather than at least once: the log row is committed as `sending`
        before SES is called. If this replica dies after SES accepted the mail but before the
        row says `sent`, the redelivered event finds `sending` and cannot tell whether the
        owner got the mail. Resending would risk a duplicate alarm in the owner's inbox for
        every crash; not resending risks one missing mail, which ops can see: the row is
        marked `unconfirmed` and logged as `notification.unconfirmed`. Every mail is also
        tagged with the transition's event id (the SES message tag `transition_id`, which
        SES's sending events carry), so whoever consumes those events can deduplicate on it.

        A registration expiry is asked about with an id derived from the domain and the date
        (no public change carries it), possibly more than once under distinct events: its
        owners are mailed, and `notification.sent` published, once for that id all the same.

        A send that provably did not happen (SES answered with an error, or the connection
        was never made) leaves no row behind: its intent is deleted and the event is
        redelivered with backoff, so that owner is mailed on a later delivery.
        """
        skip = skip_reason(event, notify_on_verified=self._settings.notify.on_verified)
        if skip is not None:
            log.info("notification.skipped", reason=skip.value, new_status=event.new_status)
            return
        # Shielded: when the broker connection drops, the client cancels every handler in
        # flight. Cancelled between recording intent and SES's answer, this delivery would
        # leave `sending` behind and the redelivery would mark that owner `unconfirmed`, a
        # mail lost to a broker hiccup. Shielded, it ends on its own, holding the
        # transition's lock, so the redelivery waits (TransitionBusyError) and then finds
        # the inbox row.
        delivery = asyncio.ensure_future(self._settle(event))
        self._in_flight.add(delivery)
        delivery.add_done_callback(self._settled)
        await asyncio.shield(delivery)

    def _settled(self, delivery: asyncio.Task[None]) -> None:
        self._in_flight.discard(delivery)
        # A delivery whose message was taken back has nobody awaiting it: its failure (the
        # redelivery retries it) is said here rather than lost as an unretrieved exception.
        if not delivery.cancelled() and (failure := delivery.exception()) is not None:
            log.info("notification.delivery_ended", error=repr(failure))

    async def drain(self) -> None:
        """Wait for the deliveries whose messages stopped waiting for them (at shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _settle(self, event: NotificationRequested) -> None:
        async with self._store.delivery() as delivery:
            if await delivery.already_handled(CONSUMER, event.event_id):
                return
            if not await delivery.try_lock(event.transition_event_id):
                raise TransitionBusyError(f"transition {event.transition_event_id} is being mailed")
            try:
                await self._deliver(delivery, event)
            finally:
                await delivery.unlock(event.transition_event_id)

    async def _deliver(self, delivery: Delivery, event: NotificationRequested) -> None:
        email = compose(event, dashboard_url=self._settings.notify.dashboard_url)
        deferred: list[str] = []
        for recipient in recipients(event.owner_emails):
            if not await self._notify_one(delivery, event, recipient, email):
                deferred.append(recipient)
        if deferred:
            raise NotificationDeferredError(
                f"{len(deferred)} recipient(s) not mailed yet; retried on redelivery"
            )
        async with delivery.settlement() as settlement:
            if not await settlement.claim(CONSUMER, event):
                return
            rows = await settlement.rows_for(event.transition_event_id)
            sent = [r for r in rows if r.state is LogState.SENT and r.message_id]
            if sent and await settlement.claim(ANNOUNCED, _as_transition(event)):
                receipt = NotificationSent(
                    correlation_id=event.correlation_id,
                    causation_id=event.event_id,
                    team_id=event.team_id,
                    domain_id=event.domain_id,
                    domain=event.domain,
                    transition_event_id=event.transition_event_id,
                    new_status=event.new_status,
                    recipient_count=len(sent),
                    message_ids=[r.message_id for r in sent if r.message_id],
                )
                # Who was mailed stays in the notifier's log: addresses go to no subscriber.
                await settlement.emit(receipt, NotificationSentV1.beside(receipt))
            unsettled = [r.recipient for r in rows if r.state is not LogState.SENT]
            log.info("notification.done", sent=len(sent), not_sent=unsettled)

    async def _notify_one(
        self, delivery: Delivery, event: NotificationRequested, recipient: str, email: Email
    ) -> bool:
        """Settle one recipient; False when SES said "not now" and a redelivery must retry."""
        notes = delivery.log
        # Outside the settlement: the intent commits before SES is called.
        if not await notes.record_intent(event, recipient):
            existing = await notes.find(event.transition_event_id, recipient)
            step = step_for(existing.state if existing else None)
            if step is Step.MARK_UNCONFIRMED:
                await notes.record_unconfirmed(
                    event.transition_event_id,
                    recipient,
                    "a delivery stopped between recording intent and recording the outcome",
                )
                log.error(
                    "notification.unconfirmed",
                    recipient=recipient,
                    why="previous attempt died mid-send; not resent (never twice)",
                )
            return True
        try:
            message_id = await self._mailer.send(
                self._settings.notify.sender,
                recipient,
                email.subject,
                email.text,
                email.html,
                self._settings.notify.region,
                transition_id=event.transition_event_id,
            )
        except Exception as exc:  # judged below; cancellation leaves the row `sending`
            judged = self._judge(exc)
            detail = f"{type(exc).__name__}: {exc}"[:1000]
            if judged is SendVerdict.RETRY:
                await notes.forget_intent(event.transition_event_id, recipient)
                log.warning("notification.deferred", recipient=recipient, error=detail)
                return False
            if judged is SendVerdict.REJECTED:
                await notes.record_rejected(event.transition_event_id, recipient, detail)
                log.error("notification.rejected", recipient=recipient, error=detail)
                return True
            await notes.record_unconfirmed(event.transition_event_id, recipient, detail)
            log.error(
                "notification.unconfirmed",
                recipient=recipient,
                error=detail,
                why="SES did not answer; it may have sent, so it is not resent (never twice)",
            )
            return True
        await notes.record_sent(event.transition_event_id, recipient, message_id)
        log.info("notification.sent", recipient=recipient, message_id=message_id)
        return True


def _as_transition(event: NotificationRequested) -> NotificationRequested:
    """The request under its transition's id, for the inbox to claim the announcement by."""
    return event.model_copy(update={"event_id": event.transition_event_id})
