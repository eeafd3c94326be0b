"""The notifier's SES mailer against moto in server mode, read back from moto's data dump."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.exceptions import ClientError

from domainflow.kit.aws import AwsClients
from domainflow.notifier.adapters.ses import SesMailer
from domainflow.sandbox.moto import MotoSandbox, SentEmail

pytestmark = pytest.mark.integration

REGION = "us-east-1"


def new_sender() -> str:
    return f"notifications@n-{uuid.uuid4().hex[:10]}.example"


def new_owner() -> str:
    return f"owner-{uuid.uuid4().hex[:10]}@acme.example"


def sent(moto: MotoSandbox, message_id: str) -> SentEmail:
    (mail,) = [m for m in moto.sent_emails() if m.message_id == message_id]
    return mail


@pytest.fixture
async def clients(moto_server: MotoSandbox) -> AsyncIterator[AwsClients]:
    async with AwsClients(max_attempts=1) as opened:
        yield opened


@pytest.fixture
async def wire(clients: AwsClients) -> list[dict[str, list[str]]]:
    """Every SendEmail request body as it left for moto (the form fields SES receives)."""
    seen: list[dict[str, list[str]]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append(
            parse_qs(request.body.decode() if isinstance(request.body, bytes) else request.body)
        )

    async with clients.ses(REGION) as ses:
        ses.meta.events.register("before-send.ses.SendEmail", record)
    return seen


async def test_a_mail_reaches_ses_with_both_parts_and_every_recipient(
    moto_server: MotoSandbox, clients: AwsClients, wire: list[dict[str, list[str]]]
) -> None:
    sender = new_sender()
    moto_server.verify_sender(sender, REGION)  # SES (and moto) sends only from verified ones
    owners = [new_owner(), new_owner()]
    mailer = SesMailer(clients)

    message_id = await mailer.send(
        f"domainflow <{sender}>",
        owners,
        "mail.acme.com failed verification",
        "Your domain mail.acme.com failed: the MX record is missing.",
        "<p>Your domain <b>mail.acme.com</b> failed: the MX record is missing.</p>",
        REGION,
        transition_id=uuid.UUID(int=7),
    )

    mail = sent(moto_server, message_id)
    assert mail.destinations == owners
    assert mail.source == f"domainflow <{sender}>"
    assert mail.subject == "mail.acme.com failed verification"
    # moto keeps one body of a SendEmail: the HTML part when there is one.
    assert mail.body == "<p>Your domain <b>mail.acme.com</b> failed: the MX record is missing.</p>"
    # Both parts, as they went over the wire to SES.
    (request,) = wire
    assert request["Message.Body.Text.Data"] == [
        "Your domain mail.acme.com failed: the MX record is missing."
    ]
    assert request["Message.Body.Html.Data"] == [mail.body]
    assert request["Message.Body.Text.Charset"] == ["UTF-8"]
    assert request["Tags.member.1.Value"] == [str(uuid.UUID(int=7))]


async def test_one_recipient_as_a_string_and_non_ascii_text(moto_server: MotoSandbox) -> None:
    sender = new_sender()
    moto_server.verify_sender(sender.split("@")[1], REGION)  # a verified domain covers it too
    owner = new_owner()

    message_id = await SesMailer().send(  # no context manager: a client for this call
        sender, owner, "Domäne bestätigt ✓", "Grüße", "<p>Grüße</p>", REGION
    )

    mail = sent(moto_server, message_id)
    assert mail.destinations == [owner]
    assert mail.subject == "Domäne bestätigt ✓"
    assert mail.body == "<p>Grüße</p>"


async def test_an_unverified_sender_is_refused_as_ses_refuses_it(
    moto_server: MotoSandbox, clients: AwsClients
) -> None:
    owner = new_owner()
    with pytest.raises(ClientError) as refused:  # raw, for the notifier's own verdict
        await SesMailer(clients).send(new_sender(), [owner], "s", "t", "<p>h</p>", REGION)
    assert refused.value.response["Error"]["Code"] == "MessageRejected"
    assert not [m for m in moto_server.sent_emails() if owner in m.destinations]


async def test_no_recipient_is_refused_before_any_call(clients: AwsClients) -> None:
    with pytest.raises(ValueError, match="recipient"):
        await SesMailer(clients).send(new_sender(), [], "s", "t", "<p>h</p>", REGION)


async def test_reset_forgets_sent_mail(fresh_moto: MotoSandbox) -> None:
    sender = new_sender()
    fresh_moto.verify_sender(sender, REGION)
    await SesMailer().send(sender, new_owner(), "s", "t", "<p>h</p>", REGION)
    assert len(fresh_moto.sent_emails()) == 1
    fresh_moto.reset()
    assert fresh_moto.sent_emails() == []
