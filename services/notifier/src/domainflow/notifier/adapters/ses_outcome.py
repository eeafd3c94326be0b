"""What a failed SES SendEmail call proves: not sent (retry, or never), or nothing at all.

Only an answer from SES, or a connection that was never made, proves the mail did not go.
A read timeout or a connection dropped after the request left may hide a mail SES accepted;
those are `UNKNOWN`, and the notifier never resends them.
"""

from __future__ import annotations

import socket

from aiohttp import ClientConnectorError
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from domainflow.kit.aws import SesError
from domainflow.notifier.domain import SendVerdict

#: SES error codes that concern the message itself (a malformed recipient, say): the same mail
#: would be refused again, so it is recorded as rejected instead of retried.
PERMANENT_CODES = frozenset(
    {
        "BadRequestException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "ValidationError",
        "ParamValidationError",  # the kit's code for the SDK's own refusal
    }
)


#: `SesError` codes the kit gives failures without an answer from SES: only a failed connect
#: proves nothing left this machine.
_NOT_CONNECTED = frozenset({"ConnectTimeout"})
_NO_ANSWER = frozenset(
    {"EndpointConnectionError", "ReadTimeout", "ConnectionClosed", "ConnectionError", "Timeout"}
)


def verdict(exc: BaseException) -> SendVerdict:
    """Classify an exception raised by the SES call (botocore's, or the kit's `SesError`)."""
    if isinstance(exc, SesError):
        # The kit's `retryable` means "may help", not "did not send": judge the original.
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, SesError):
            return verdict(cause)
        if exc.code in _NOT_CONNECTED:
            return SendVerdict.RETRY
        if exc.code in _NO_ANSWER:
            return SendVerdict.UNKNOWN
        return SendVerdict.REJECTED if exc.code in PERMANENT_CODES else SendVerdict.RETRY
    if isinstance(exc, ClientError):
        # SES answered: nothing was sent. Throttling, 5xx and account-level refusals
        # (unverified sender, sending paused) can clear, so they retry, and end in the DLQ
        # where ops see them if they do not.
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return SendVerdict.REJECTED if code in PERMANENT_CODES else SendVerdict.RETRY
    if isinstance(exc, ParamValidationError):
        return SendVerdict.REJECTED  # refused by the SDK before any request left
    if isinstance(exc, ConnectTimeoutError | NoCredentialsError | PartialCredentialsError):
        return SendVerdict.RETRY  # no connection, or no request was signed: nothing left
    if isinstance(exc, NoRegionError):
        return SendVerdict.RETRY
    if isinstance(exc, EndpointConnectionError):
        # aiobotocore raises this for any aiohttp connection error, including a reset after
        # the request was written; only a failed connect proves nothing was sent.
        cause = exc.kwargs.get("error")
        if isinstance(cause, ClientConnectorError | socket.gaierror | ConnectionRefusedError):
            return SendVerdict.RETRY
    return SendVerdict.UNKNOWN
