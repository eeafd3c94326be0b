"""Which failures at start a replica waits out: a server not up yet, never bad credentials."""

from __future__ import annotations

import asyncpg
import pytest
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError

from domainflow.kit.startup import worth_waiting_for


@pytest.mark.parametrize(
    ("failure", "wait"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (AMQPConnectionError("connection reset"), True),
        (TimeoutError(), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),
        (ProbableAuthenticationError("ACCESS_REFUSED"), False),
        (asyncpg.InvalidPasswordError("password authentication failed"), False),
        (asyncpg.InvalidCatalogNameError("database does not exist"), False),
        (ValueError("database URL names no database"), False),
    ],
)
def test_only_a_server_not_up_yet_is_waited_for(failure: Exception, wait: bool) -> None:
    assert worth_waiting_for(failure) is wait
