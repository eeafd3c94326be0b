"""The api's `/metrics`: its gauges over HTTP, in Prometheus' text format."""

from __future__ import annotations

import re

import pytest

from domainflow.api.teams.service import NewKey
from tests.integration.api.harness import ApiHarness

pytestmark = pytest.mark.integration


def _pending(text: str) -> int:
    match = re.search(r'^domainflow_domains\{service="api",status="pending"\} (\d+)$', text, re.M)
    assert match, text
    return int(match.group(1))


async def test_metrics_count_the_domains_as_they_move(api: ApiHarness, team: NewKey) -> None:
    before = await api.client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE domainflow_outbox_pending gauge" in before.text
    await api.pending_domain(team)
    after = await api.client.get("/metrics")
    assert _pending(after.text) == _pending(before.text) + 1
