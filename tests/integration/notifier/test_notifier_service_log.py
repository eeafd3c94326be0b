"""The notifier's handler against a real PostgreSQL: intent, outcome, never twice, retries.

SES is replaced here by a scripted mailer so every failure kind can be produced on demand;
the real SES path (moto) is exercised by test_notifier_service_flow.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files

import asyncpg
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    DomainStatus,
    NotificationRequested,
    RecordCheck,
    RecordKind,
)
from domainflow.kit.database import Database, migration_files
from domainflow.kit.runtime import kit_migrations
from domainflow.notifier.adapters.repository import PgNotifierStore
from domainflow.notifier.handlers import (
    NotificationDeferredError,
    NotifierHandlers,
    TransitionBusyError,
)
from domainflow.notifier.settings import NotifierSettings, NotifySettings

pytestmark = pytest.mark.integration


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


@pytest.fixture
async def db_url(database_url: Callable[[str], Awaitable[str]]) -> str:
    return await database_url("notifier_log")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    url = db_url
    notifier = migration_files(files("domainflow.notifier") / "migrations")
    database = await Database.prepare(url, [*kit_migrations(), *notifier], size=4)
    yield database
    await database.close()


def handlers_for(
    db: Database, mailer: ScriptedMailer, *, on_verified: bool = True
) -> NotifierHandlers:
    store = PgNotifierStore(db)
    settings = NotifierSettings(notify=NotifySettings(on_verified=on_verified))
    return NotifierHandlers(store, mailer, settings)


def failed_transition(owners: list[str], **fields: object) -> NotificationRequested:
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
                found=["v=spf1 a", "v=spf1 b"],
                reason="multiple_spf_records",
                message="Two SPF records.",
            )
        ],
    }
    values.update(fields)
    return NotificationRequested.model_validate(values)


async def log_rows(db: Database, event: NotificationRequested) -> dict[str, tuple[str, str | None]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT recipient, state, message_id FROM notifications WHERE transition_event_id = $1",
            event.transition_event_id,
        )
    return {r["recipient"]: (r["state"], r["message_id"]) for r in rows}


async def outbox_events(db: Database) -> list[dict[str, object]]:
    """What the notifier published, in version 2 (version 1 beside each, checked here)."""
    async with db.pool.acquire() as conn:
        bodies = await conn.fetch("SELECT body FROM outbox ORDER BY id")
    events = [json.loads(bytes(b["body"])) for b in bodies]
    current = [e for e in events if e["version"] == 2]
    beside = [e for e in events if e["version"] == 1]
    assert [e["transition_event_id"] for e in beside] == [e["transition_event_id"] for e in current]
    assert all(e["recipients"] == [] for e in beside)  # addresses go to no subscriber
    return current


async def test_each_owner_is_mailed_once_and_the_result_is_published_once(db: Database) -> None:
    mailer = ScriptedMailer()
    handlers = handlers_for(db, mailer)
    event = failed_transition(["ann@acme.com", "bob@acme.com", "ANN@acme.com"])
    await handlers.on_notification_requested(event)
    assert [to for to, _, _ in mailer.sent] == ["ann@acme.com", "bob@acme.com"]
    assert all(tid == event.transition_event_id for _, _, tid in mailer.sent)
    assert await log_rows(db, event) == {
        "ann@acme.com": ("sent", "msg-1"),
        "bob@acme.com": ("sent", "msg-2"),
    }
    (published,) = await outbox_events(db)
    assert published["type"] == "notification.sent"
    assert published["transition_event_id"] == str(event.transition_event_id)
    assert published["causation_id"] == str(event.event_id)
    assert published["correlation_id"] == "req_test"
    assert published["recipient_count"] == 2
    assert "recipients" not in published
    assert published["message_ids"] == ["msg-1", "msg-2"]

    await handlers.on_notification_requested(event)  # redelivered
    assert len(mailer.calls) == 2
    assert len(await outbox_events(db)) == 1


async def test_unwanted_transitions_send_nothing(db: Database) -> None:
    mailer = ScriptedMailer()
    quiet = handlers_for(db, mailer, on_verified=False)
    await quiet.on_notification_requested(failed_transition(["  "]))
    verified = failed_transition(["a@acme.com"], new_status=DomainStatus.VERIFIED)
    await quiet.on_notification_requested(verified)
    assert mailer.calls == []
    assert await log_rows(db, verified) == {}
    await handlers_for(db, mailer, on_verified=True).on_notification_requested(verified)
    assert [subject for _, subject, _ in mailer.sent] == ["mail.acme.com is verified"]


async def test_a_refused_send_leaves_no_intent_and_is_retried_on_redelivery(db: Database) -> None:
    mailer = ScriptedMailer()
    mailer.failures["bob@acme.com"] = ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail"
    )
    handlers = handlers_for(db, mailer)
    event = failed_transition(["ann@acme.com", "bob@acme.com"])
    with pytest.raises(NotificationDeferredError):
        await handlers.on_notification_requested(event)
    assert await log_rows(db, event) == {"ann@acme.com": ("sent", "msg-1")}
    assert await outbox_events(db) == []  # nothing published until every owner is settled

    await handlers.on_notification_requested(event)  # the redelivery
    assert mailer.calls == ["ann@acme.com", "bob@acme.com", "bob@acme.com"]
    assert await log_rows(db, event) == {
        "ann@acme.com": ("sent", "msg-1"),
        "bob@acme.com": ("sent", "msg-2"),
    }
    (published,) = await outbox_events(db)
    assert published["recipient_count"] == 2


async def test_a_permanent_refusal_is_recorded_not_retried(db: Database) -> None:
    mailer = ScriptedMailer()
    mailer.failures["bad@acme"] = ClientError(
        {"Error": {"Code": "BadRequestException", "Message": "bad address"}}, "SendEmail"
    )
    handlers = handlers_for(db, mailer)
    event = failed_transition(["bad@acme", "ann@acme.com"])
    await handlers.on_notification_requested(event)
    await handlers.on_notification_requested(event)
    assert mailer.calls == ["bad@acme", "ann@acme.com"]
    assert await log_rows(db, event) == {
        "bad@acme": ("rejected", None),
        "ann@acme.com": ("sent", "msg-1"),
    }
    (published,) = await outbox_events(db)
    assert published["recipient_count"] == 1


async def test_no_answer_from_ses_is_unconfirmed_and_never_resent(db: Database) -> None:
    mailer = ScriptedMailer()
    mailer.failures["ann@acme.com"] = ReadTimeoutError(endpoint_url="http://ses")
    handlers = handlers_for(db, mailer)
    event = failed_transition(["ann@acme.com"])
    await handlers.on_notification_requested(event)
    await handlers.on_notification_requested(event)
    assert mailer.calls == ["ann@acme.com"]
    assert await log_rows(db, event) == {"ann@acme.com": ("unconfirmed", None)}
    assert await outbox_events(db) == []  # nothing confirmed, nothing to announce


async def test_intent_left_by_a_dead_delivery_becomes_unconfirmed(db: Database) -> None:
    event = failed_transition(["ann@acme.com", "bob@acme.com"])
    async with db.pool.acquire() as conn:  # what a replica killed mid-send leaves behind
        await conn.execute(
            "INSERT INTO notifications (transition_event_id, recipient, domain_id, domain,"
            " new_status, state) VALUES ($1, 'ann@acme.com', 'mdom_abc', 'mail.acme.com',"
            " 'failed', 'sending')",
            event.transition_event_id,
        )
    mailer = ScriptedMailer()
    await handlers_for(db, mailer).on_notification_requested(event)
    assert mailer.calls == ["bob@acme.com"]
    assert await log_rows(db, event) == {
        "ann@acme.com": ("unconfirmed", None),
        "bob@acme.com": ("sent", "msg-1"),
    }


async def test_a_transition_being_mailed_elsewhere_is_left_alone(db: Database, db_url: str) -> None:
    event = failed_transition(["ann@acme.com"])
    other = await asyncpg.connect(db_url)
    try:
        key = int.from_bytes(event.transition_event_id.bytes[:8], "big", signed=True)
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        mailer = ScriptedMailer()
        with pytest.raises(TransitionBusyError):
            await handlers_for(db, mailer).on_notification_requested(event)
        assert mailer.calls == []
        assert await log_rows(db, event) == {}
    finally:
        await other.close()
