"""The notifier's decisions: who is mailed, when, what a log row means, what an SES error proves."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from aiohttp import ClientConnectorError, ClientOSError
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domainflow.contracts import ChangeReason, DomainStatus, NotificationRequested
from domainflow.kit.aws import SesError, ses_error
from domainflow.notifier.adapters.ses_outcome import verdict
from domainflow.notifier.domain import (
    LogState,
    SendVerdict,
    Skip,
    Step,
    recipients,
    skip_reason,
    step_for,
)
from domainflow.notifier.settings import NotifierSettings


def changed(
    *,
    status: DomainStatus = DomainStatus.FAILED,
    owners: list[str] | None = None,
) -> NotificationRequested:
    return NotificationRequested(
        correlation_id="req_1",
        team_id="team_abc",
        domain_id="mdom_abc",
        domain="mail.acme.com",
        region="us-east-1",
        old_status=DomainStatus.PENDING,
        new_status=status,
        reason="r",
        transition_event_id=uuid.uuid4(),
        owner_emails=["a@acme.com"] if owners is None else owners,
    )


def test_a_failure_the_api_asks_about_is_mailed() -> None:
    assert skip_reason(changed(), notify_on_verified=False) is None


def test_verified_mail_follows_the_setting() -> None:
    verified = changed(status=DomainStatus.VERIFIED)
    assert skip_reason(verified, notify_on_verified=True) is None
    assert skip_reason(verified, notify_on_verified=False) is Skip.VERIFIED_OFF
    # the setting never silences a failure
    assert skip_reason(changed(), notify_on_verified=False) is None


def test_an_expiry_notice_on_a_verified_domain_is_mailed_whatever_the_setting() -> None:
    notice = changed(status=DomainStatus.VERIFIED).model_copy(
        update={"reason_code": ChangeReason.REGISTRATION_EXPIRING}
    )
    assert skip_reason(notice, notify_on_verified=False) is None


def test_no_owner_no_mail() -> None:
    assert skip_reason(changed(owners=[]), notify_on_verified=True) is Skip.NO_OWNERS
    assert skip_reason(changed(owners=["  ", ""]), notify_on_verified=True) is Skip.NO_OWNERS


def test_recipients_are_trimmed_and_unique_ignoring_case() -> None:
    event = changed(owners=[" Ann@Acme.com", "bob@acme.com", "ann@acme.com", "", "BOB@acme.com"])
    assert recipients(event.owner_emails) == ["Ann@Acme.com", "bob@acme.com"]


@given(st.lists(st.emails() | st.just("  "), max_size=8))
def test_recipients_never_repeat_an_address(owners: list[str]) -> None:
    found = recipients(changed(owners=owners).owner_emails)
    assert len({r.casefold() for r in found}) == len(found)
    assert {r.casefold() for r in found} == {o.strip().casefold() for o in owners if o.strip()}


def test_a_row_means_never_send_again() -> None:
    assert step_for(None) is Step.SEND
    assert step_for(LogState.SENDING) is Step.MARK_UNCONFIRMED
    for settled in (LogState.SENT, LogState.REJECTED, LogState.UNCONFIRMED):
        assert step_for(settled) is Step.DONE


def _client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendEmail")


def _connector_error() -> ClientConnectorError:
    key = ConnectionKey("h", 1, False, True, None, None, None)
    return ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("TooManyRequestsException", 429), SendVerdict.RETRY),
        (_client_error("Throttling"), SendVerdict.RETRY),
        (_client_error("InternalFailure", 500), SendVerdict.RETRY),
        (_client_error("MessageRejected"), SendVerdict.RETRY),  # e.g. sender not verified yet
        (_client_error("SendingPausedException"), SendVerdict.RETRY),
        (_client_error("BadRequestException"), SendVerdict.REJECTED),
        (_client_error("InvalidParameterValue"), SendVerdict.REJECTED),
        (ParamValidationError(report="bad"), SendVerdict.REJECTED),
        (NoCredentialsError(), SendVerdict.RETRY),
        (ConnectTimeoutError(endpoint_url="http://x"), SendVerdict.RETRY),
        (
            EndpointConnectionError(endpoint_url="http://x", error=_connector_error()),
            SendVerdict.RETRY,
        ),
        (
            EndpointConnectionError(endpoint_url="http://x", error=socket.gaierror()),
            SendVerdict.RETRY,
        ),
        # a reset after the request left is not proof of anything
        (
            EndpointConnectionError(endpoint_url="http://x", error=ClientOSError()),
            SendVerdict.UNKNOWN,
        ),
        (ReadTimeoutError(endpoint_url="http://x"), SendVerdict.UNKNOWN),
        (ConnectionClosedError(endpoint_url="http://x"), SendVerdict.UNKNOWN),
        (TimeoutError(), SendVerdict.UNKNOWN),
        (RuntimeError("anything else"), SendVerdict.UNKNOWN),
    ],
)
def test_only_an_answer_or_a_failed_connect_proves_nothing_was_sent(
    exc: BaseException, expected: SendVerdict
) -> None:
    assert verdict(exc) is expected


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "DOMAINFLOW_NOTIFY_REGION"):
        monkeypatch.delenv(var, raising=False)
    defaults = NotifierSettings()
    assert defaults.health.port == 8003
    assert defaults.notify.on_verified is True
    assert defaults.notify.region == "us-east-1"
    assert defaults.notify.dashboard_url is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("DOMAINFLOW_NOTIFY_FROM", "ops@example.com")
    monkeypatch.setenv("DOMAINFLOW_NOTIFY_ON_VERIFIED", "false")
    monkeypatch.setenv("DOMAINFLOW_NOTIFY_DASHBOARD_URL", "https://app.example.com/d")
    configured = NotifierSettings()
    assert configured.notify.region == "eu-west-1"
    assert configured.notify.sender == "ops@example.com"
    assert configured.notify.on_verified is False
    assert configured.notify.dashboard_url == "https://app.example.com/d"


def test_dashboard_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMAINFLOW_NOTIFY_DASHBOARD_URL", "javascript:alert(1)")
    with pytest.raises(ValidationError):
        NotifierSettings()
    monkeypatch.setenv("DOMAINFLOW_NOTIFY_DASHBOARD_URL", "")
    assert NotifierSettings().notify.dashboard_url is None


def _translated(exc: BaseException) -> SesError:
    """What the kit's `raising_ses_errors` raises: an `SesError` from the original."""
    translated = ses_error(exc)
    assert translated is not None
    translated.__cause__ = exc
    return translated


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_translated(ReadTimeoutError(endpoint_url="http://x")), SendVerdict.UNKNOWN),
        (_translated(ConnectTimeoutError(endpoint_url="http://x")), SendVerdict.RETRY),
        (_translated(_client_error("Throttling")), SendVerdict.RETRY),
        (_translated(_client_error("BadRequestException")), SendVerdict.REJECTED),
        (SesError("ReadTimeout", "no answer", retryable=True), SendVerdict.UNKNOWN),
        (SesError("ConnectionClosed", "reset", retryable=True), SendVerdict.UNKNOWN),
        (SesError("ConnectTimeout", "no connect", retryable=True), SendVerdict.RETRY),
        (SesError("MessageRejected", "not verified", retryable=False), SendVerdict.RETRY),
        (SesError("InvalidParameterValue", "bad", retryable=False), SendVerdict.REJECTED),
    ],
)
def test_the_kits_ses_error_is_judged_by_what_happened_not_by_retryable(
    exc: BaseException, expected: SendVerdict
) -> None:
    assert verdict(exc) is expected
