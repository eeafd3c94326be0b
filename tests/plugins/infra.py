"""Pytest fixtures for the servers every machine of this project runs: PostgreSQL, RabbitMQ.

Tests never touch a developer's running stack: each session gets its own RabbitMQ
vhost and its own databases (`dftest_<name>`), dropped at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import quote

import pytest

from domainflow.kit.database import drop_database, ensure_database


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _container_fallback(kind: str) -> str | None:
    """Where no local server answers and a Docker engine exists, start one with
    testcontainers (machines of this project's kind run both servers; others may not)."""
    if shutil.which("docker") is None:
        return None
    try:
        if kind == "postgres":
            from testcontainers.postgres import PostgresContainer

            pg = PostgresContainer("postgres:15", username="postgres", password="postgres")
            pg.start()
            atexit.register(pg.stop)
            port = pg.get_exposed_port(5432)
            return f"postgresql://postgres:postgres@{pg.get_container_host_ip()}:{port}"
        from testcontainers.rabbitmq import RabbitMqContainer

        mq = RabbitMqContainer("rabbitmq:3.13")
        mq.start()
        atexit.register(mq.stop)
        return f"amqp://guest:guest@{mq.get_container_host_ip()}:{mq.get_exposed_port(5672)}"
    except Exception:  # no engine after all: the tests will say the server is missing
        return None


POSTGRES = (
    os.environ.get("DOMAINFLOW_TEST_POSTGRES_URL")
    or (None if _reachable(5432) else _container_fallback("postgres"))
    or "postgresql://postgres@127.0.0.1:5432"
)
AMQP_ROOT = (
    os.environ.get("DOMAINFLOW_TEST_AMQP_URL")
    or (None if _reachable(5672) else _container_fallback("rabbitmq"))
    or "amqp://guest:guest@127.0.0.1:5672"
)


def _rabbitmqctl(*args: str) -> None:
    # rabbitmqctl boots an Erlang VM per call: seconds when idle, far more on a busy machine.
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def _drop_vhost(vhost: str) -> None:
    """Clean-up after the tests ran: a slow or failed drop is reported, not a test failure."""
    try:
        _rabbitmqctl("delete_vhost", vhost)
    except (subprocess.SubprocessError, OSError) as failure:
        warnings.warn(f"RabbitMQ vhost {vhost} was left behind: {failure}", stacklevel=1)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test session's own (created with rabbitmqctl when available)."""
    if os.environ.get("DOMAINFLOW_TEST_AMQP_VHOST") or shutil.which("rabbitmqctl") is None:
        vhost = os.environ.get("DOMAINFLOW_TEST_AMQP_VHOST", "/")
        yield f"{AMQP_ROOT}/{quote(vhost, safe='')}"
        return
    vhost = f"domainflow-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"{AMQP_ROOT}/{quote(vhost, safe='')}"
    finally:
        _drop_vhost(vhost)


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[Callable[[str], str]]:
    """`amqp_vhost("e2e")` -> the URL of a RabbitMQ vhost of its own, for one group of tests
    whose consumers must not share queues with the rest of the session."""
    made: list[str] = []

    def make(name: str) -> str:
        vhost = f"domainflow-test-{name}-{uuid.uuid4().hex[:6]}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        made.append(vhost)
        return f"{AMQP_ROOT}/{quote(vhost, safe='')}"

    yield make
    for vhost in made:
        _drop_vhost(vhost)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """`await database_url("provisioner")` -> URL of a fresh, empty test database."""
    made: list[str] = []

    async def make(name: str) -> str:
        url = f"{POSTGRES}/dftest_{name}_{uuid.uuid4().hex[:6]}"
        await ensure_database(url)
        made.append(url)
        return url

    yield make
    for url in made:
        await drop_database(url)
