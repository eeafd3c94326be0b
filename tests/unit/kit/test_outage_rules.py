"""Which failures are waited out (at start, and in consumers): a server away, never bad
credentials, never a failure of the message itself."""

from __future__ import annotations

import asyncpg
import pytest
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError

from domainflow.kit.outages import is_outage


@pytest.mark.parametrize(
    ("failure", "wait"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (AMQPConnectionError("connection reset"), True),
        (TimeoutError(), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.UniqueViolationError("duplicate key value"), False),
        (KeyError("domain_id"), False),
        (OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."), True),  # "localhost"
        (FileNotFoundError(2, "No such file or directory"), False),
        (PermissionError(13, "Permission denied"), False),
        (ProbableAuthenticationError("ACCESS_REFUSED"), False),
        (asyncpg.InvalidPasswordError("password authentication failed"), False),
        (asyncpg.InvalidCatalogNameError("database does not exist"), False),
        (ValueError("database URL names no database"), False),
    ],
)
def test_only_a_server_away_is_waited_for(failure: Exception, wait: bool) -> None:
    assert is_outage(failure) is wait
