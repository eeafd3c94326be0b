"""Fixtures: a fresh api per test module over real PostgreSQL and the session's RabbitMQ vhost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domainflow.api.app import create_app
from domainflow.api.settings import ApiSettings
from domainflow.api.teams.service import NewKey
from tests.integration.api.harness import ApiHarness


def api_settings(database_url: str, amqp_url: str, **overrides: Any) -> ApiSettings:
    chosen: dict[str, Any] = {
        "create_wait_seconds": 0.5,
        "verify_wait_seconds": 0.5,
        "log_level": "WARNING",
        "log_format": "console",
        "outbox_poll_interval": 0.2,
        "database_pool_size": 20,
        # Tests add hundreds of domains a second for one team; test_api_throttle.py turns the
        # team budget on where it is the subject.
        "domain_write_rate": 0.0,
        # The tests' names are under example.com, as the sandbox resolver's are.
        "special_use_allowed": ["example", "example.com", "test"],
        # The operator's listener on a port the kernel picks: modules run side by side.
        "api_metrics_port": 0,
    }
    return ApiSettings(api_database_url=database_url, amqp_url=amqp_url, **{**chosen, **overrides})


@pytest.fixture(scope="module")
async def api(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    """A fresh api (its own database) for the test module, lifespan and all."""
    settings = api_settings(await database_url("api"), amqp_url)
    async with AsyncTestClient(create_app(settings)) as client:
        harness = ApiHarness(client, settings)
        yield harness


@pytest.fixture
async def team(api: ApiHarness) -> NewKey:
    """A new team and its root:full key."""
    return await api.key()
