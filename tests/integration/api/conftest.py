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


def api_settings(database_url: str, amqp_url: str, **overrides: dict[str, Any]) -> ApiSettings:
    """The tests' api settings; `overrides` change single fields of a group
    (`waits={"verify_seconds": 5.0}`), the group's other choices here stay."""
    chosen: dict[str, dict[str, Any]] = {
        "waits": {"create_seconds": 0.5, "verify_seconds": 0.5},
        "log": {"level": "WARNING", "format": "console"},
        "outbox": {"poll_interval": 0.2},
        "database": {"url": database_url, "pool_size": 20},
        "broker": {"amqp_url": amqp_url},
        # Tests add hundreds of domains a second for one team; test_api_throttle.py turns the
        # team budget on where it is the subject.
        "write_limit": {"domain_write_rate": 0.0},
        # The tests' names are under example.com, as the sandbox resolver's are.
        "names": {"special_use_allowed": ["example", "example.com", "test"]},
        # The operator's listener on a port the kernel picks: modules run side by side.
        "http": {"metrics_port": 0},
    }
    groups = {
        group: {**chosen.get(group, {}), **overrides.get(group, {})}
        for group in chosen.keys() | overrides.keys()
    }
    return ApiSettings(**groups)


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
