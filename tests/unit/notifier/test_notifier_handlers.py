"""NotifierHandlers on the in-memory store: every way a transition's mail ends, in milliseconds.

The same handler runs against PostgreSQL in tests/integration/notifier; here the store is
`InMemoryStore` (the unit-of-work seam) and SES a scripted mailer, judged by the real
`verdict` of botocore's exceptions.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from domainflow.contracts import (
    ChangeReason,
    CheckOutcome,
    DkimStatus,
    DomainStatus,
    NotificationRequested,
    NotificationSent,
    RecordCheck,
    RecordKind,
)
from domainflow.notifier.domain import LogState
from domainflow.notifier.handlers import (
    ANNOUNCED,
    CONSUMER,
    NotificationDeferredError,
    NotifierHandlers,
    TransitionBusyError,
)
from domainflow.notifier.in_memory import InMemoryStore
from domainflow.notifier.settings import NotifierSettings, NotifySettings
from domainflow.notifier.unit_of_work import LogRow


class ScriptedMailer:
    """Answers each recipient as told: an exception to raise, else a fresh message id."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, uuid.UUID]] = []
        self.calls: list[str] = []
        self.failures: dict[str, BaseException] = {}

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
    ) -> str:
        self.calls.append(to)
        failure = self.failures.pop(to, None)
        if failure is not None:
            raise failure
        self.sent.append((to, subject, transition_id))
        return f"msg-{len(self.sent)}"


def handlers_for(
    store: InMemoryStore, mailer: ScriptedMailer, *, notify_on_verified: bool = True
) -> NotifierHandlers:
    return NotifierHandlers(
        store, mailer, NotifierSettings(notify=NotifySettings(on_verified=notify_on_verified))
    )


def transition(owners: list[str], **fields: object) -> NotificationRequested:
    values: dict[str, object] = {
        "correlation_id": "req_test",
        "team_id": "team_abc",
        "domain_id": "mdom_abc",
        "domain": "mail.acme.com",
        "region": "us-east-1",
        "old_status": DomainStatus.PENDING,
        "new_status": DomainStatus.FAILED,
        "reason": "verification failed twice",
        "transition_event_id": uuid.uuid4(),
        "owner_emails": owners,
        "ses_dkim_status": DkimStatus.SUCCESS,
        "checks": [
            RecordCheck(
                record=RecordKind.SPF,
                outcome=CheckOutcome.FAIL,
                name="mail.acme.com",
                expected="v=spf1 include:amazonses.com ~all",
                reason="record_missing",
                message="No SPF record.",
            )
        ],
    }
    values.update(fields)
    return NotificationRequested.model_validate(values)


def log_of(store: InMemoryStore, event: NotificationRequested) -> dict[str, tuple[str, str | None]]:
    return {
        r.recipient: (r.state.value, r.message_id) for r in store.rows_of(event.transition_event_id)
    }


def announced(store: InMemoryStore) -> list[NotificationSent]:
    return [e for e in store.outbox if isinstance(e, NotificationSent)]


def ses_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "SendEmail")


# -- success ----------------------------------------------------------------------------------


async def test_each_owner_is_mailed_once_and_the_result_announced_once() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    handlers = handlers_for(store, mailer)
    event = transition(["ann@acme.com", "bob@acme.com", " ANN@acme.com "])

    await handlers.on_notification_requested(event)
    await handlers.on_notification_requested(event)  # the redelivery finds the inbox row

    assert mailer.calls == ["ann@acme.com", "bob@acme.com"]
    assert {tid for _, _, tid in mailer.sent} == {
        event.transition_event_id
    }  # tagged for deduplication
    assert log_of(store, event) == {
        "ann@acme.com": ("sent", "msg-1"),
        "bob@acme.com": ("sent", "msg-2"),
    }
    (sent,) = announced(store)
    assert sent.recipient_count == 2
    assert sent.message_ids == ["msg-1", "msg-2"]
    assert sent.transition_event_id == event.transition_event_id  # the public change
    assert sent.causation_id == event.event_id  # the ask it answers
    assert sent.correlation_id == event.correlation_id
    assert store.inbox == {(CONSUMER, event.event_id), (ANNOUNCED, event.transition_event_id)}
    assert store.locked == set()


async def test_an_expiry_asked_about_again_is_neither_mailed_nor_announced_again() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    handlers = handlers_for(store, mailer, notify_on_verified=False)
    same_date = uuid.uuid4()  # the api's id for (domain, expiry date)
    fields: dict[str, object] = {
        "old_status": DomainStatus.VERIFIED,
        "new_status": DomainStatus.VERIFIED,
        "reason_code": ChangeReason.REGISTRATION_EXPIRING,
        "registration_expires_at": datetime(2027, 1, 10, tzinfo=UTC),
        "transition_event_id": same_date,
        "checks": [],
    }
    first = transition(["ann@acme.com"], **fields)
    again = transition(["ann@acme.com"], **fields)  # the watch reported it anew after a gap
    assert first.event_id != again.event_id

    await handlers.on_notification_requested(first)
    await handlers.on_notification_requested(again)

    assert mailer.calls == ["ann@acme.com"]
    assert "expires on 2027-01-10" in mailer.sent[0][1]
    (sent,) = announced(store)
    assert sent.causation_id == first.event_id
    assert (CONSUMER, again.event_id) in store.inbox  # handled: a redelivery does nothing


async def test_verified_is_mailed_only_when_asked_for() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    verified = transition(["ann@acme.com"], new_status=DomainStatus.VERIFIED)
    await handlers_for(store, mailer, notify_on_verified=True).on_notification_requested(verified)
    assert [subject for _, subject, _ in mailer.sent] == ["mail.acme.com is verified"]


# -- nothing to send ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "notify_on_verified"),
    [
        (transition(["ann@acme.com"], new_status=DomainStatus.VERIFIED), False),
        (transition(["", "  "]), True),
    ],
    ids=["verified_off", "no_owners"],
)
async def test_a_transition_not_to_mail_touches_nothing(
    event: NotificationRequested, notify_on_verified: bool
) -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    handlers = handlers_for(store, mailer, notify_on_verified=notify_on_verified)
    await handlers.on_notification_requested(event)
    assert mailer.calls == []
    assert store == InMemoryStore()


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [ses_error("TooManyRequestsException"), ConnectTimeoutError(endpoint_url="http://ses")],
    ids=["throttled", "never_connected"],
)
async def test_a_send_that_did_not_happen_is_retried_on_redelivery(failure: Exception) -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    mailer.failures["bob@acme.com"] = failure
    handlers = handlers_for(store, mailer)
    event = transition(["ann@acme.com", "bob@acme.com"])

    with pytest.raises(NotificationDeferredError):
        await handlers.on_notification_requested(event)
    assert log_of(store, event) == {"ann@acme.com": ("sent", "msg-1")}  # bob's intent dropped
    assert store.outbox == []  # nothing announced until every owner is settled
    assert store.inbox == set()  # so the redelivery is not skipped
    assert store.locked == set()  # and can take the lock

    await handlers.on_notification_requested(event)
    assert mailer.calls == ["ann@acme.com", "bob@acme.com", "bob@acme.com"]
    (sent,) = announced(store)
    assert sent.recipient_count == 2


async def test_a_permanent_refusal_is_recorded_and_not_retried() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    mailer.failures["bad@acme"] = ses_error("BadRequestException")
    handlers = handlers_for(store, mailer)
    event = transition(["bad@acme", "ann@acme.com"])

    await handlers.on_notification_requested(event)
    await handlers.on_notification_requested(event)

    assert mailer.calls == ["bad@acme", "ann@acme.com"]
    assert log_of(store, event) == {
        "bad@acme": ("rejected", None),
        "ann@acme.com": ("sent", "msg-1"),
    }
    (sent,) = announced(store)
    assert sent.recipient_count == 1


async def test_every_owner_refused_is_settled_without_an_announcement() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    mailer.failures["bad@acme"] = ses_error("BadRequestException")
    event = transition(["bad@acme"])
    await handlers_for(store, mailer).on_notification_requested(event)
    assert log_of(store, event) == {"bad@acme": ("rejected", None)}
    assert store.outbox == []
    assert store.inbox == {(CONSUMER, event.event_id)}


async def test_no_answer_from_ses_is_unconfirmed_and_never_resent() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    mailer.failures["ann@acme.com"] = ReadTimeoutError(endpoint_url="http://ses")
    handlers = handlers_for(store, mailer)
    event = transition(["ann@acme.com"])

    await handlers.on_notification_requested(event)
    await handlers.on_notification_requested(event)

    assert mailer.calls == ["ann@acme.com"]
    assert log_of(store, event) == {"ann@acme.com": ("unconfirmed", None)}
    assert store.outbox == []


async def test_intent_left_by_a_dead_delivery_becomes_unconfirmed_not_resent() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    event = transition(["ann@acme.com", "bob@acme.com"])
    # What a replica killed between recording intent and recording the outcome leaves.
    store.rows[(event.transition_event_id, "ann@acme.com")] = LogRow(
        "ann@acme.com", LogState.SENDING, None, None
    )

    await handlers_for(store, mailer).on_notification_requested(event)

    assert mailer.calls == ["bob@acme.com"]
    assert log_of(store, event) == {
        "ann@acme.com": ("unconfirmed", None),
        "bob@acme.com": ("sent", "msg-1"),
    }
    (sent,) = announced(store)
    assert sent.recipient_count == 1


async def test_a_transition_being_mailed_elsewhere_is_left_alone() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    event = transition(["ann@acme.com"])
    async with store.delivery() as elsewhere:
        assert await elsewhere.try_lock(event.transition_event_id)
        with pytest.raises(TransitionBusyError):
            await handlers_for(store, mailer).on_notification_requested(event)
        assert mailer.calls == []
        assert log_of(store, event) == {}
    # The other delivery ended (its connection went back): the transition is free again.
    await handlers_for(store, mailer).on_notification_requested(event)
    assert mailer.calls == ["ann@acme.com"]


async def test_a_settlement_that_fails_commits_nothing_and_the_redelivery_finishes() -> None:
    store, mailer = InMemoryStore(), ScriptedMailer()
    handlers = handlers_for(store, mailer)
    event = transition(["ann@acme.com"])
    store.fail_next_settlement = ConnectionResetError("database gone at commit")

    with pytest.raises(ConnectionResetError):
        await handlers.on_notification_requested(event)
    assert store.inbox == set()
    assert store.outbox == []
    assert log_of(store, event) == {"ann@acme.com": ("sent", "msg-1")}

    await handlers.on_notification_requested(
        event
    )  # the redelivery: no second mail, one announcement
    assert mailer.calls == ["ann@acme.com"]
    (sent,) = announced(store)
    assert sent.recipient_count == 1
    assert store.inbox == {(CONSUMER, event.event_id), (ANNOUNCED, event.transition_event_id)}


class HeldMailer(ScriptedMailer):
    """Holds every send until released: a delivery caught between intent and SES's answer."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

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
    ) -> str:
        self.sending.set()
        await self.release.wait()
        return await super().send(
            sender, to, subject, text, html, region, transition_id=transition_id
        )


async def test_a_delivery_whose_message_is_cancelled_mid_send_still_mails_once() -> None:
    # The broker connection drops while SES is being asked: the client cancels the handler.
    store, mailer = InMemoryStore(), HeldMailer()
    handlers = handlers_for(store, mailer)
    event = transition(["ann@acme.com"])
    first = asyncio.create_task(handlers.on_notification_requested(event))
    await mailer.sending.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    # The redelivery arrives while the first send is still under way: it waits its turn.
    with pytest.raises(TransitionBusyError):
        await handlers.on_notification_requested(event)
    mailer.release.set()
    await handlers.drain()
    await handlers.on_notification_requested(event)  # and then finds it done

    assert mailer.calls == ["ann@acme.com"]
    assert log_of(store, event) == {"ann@acme.com": ("sent", "msg-1")}
    (sent,) = announced(store)
    assert sent.recipient_count == 1
    assert store.locked == set()
