"""Each service consumes exactly what the contracts' topology table says it does."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest

from domainflow.contracts.topology import SUBSCRIPTIONS, queue_name

SETTINGS = {
    "api": "domainflow.api.settings:ApiSettings",
    "provisioner": "domainflow.provisioner.settings:ProvisionerSettings",
    "verifier": "domainflow.verifier.settings:VerifierSettings",
    "notifier": "domainflow.notifier.settings:NotifierSettings",
}


class _AnyHandler(SimpleNamespace):
    """Stands in for the handler object: every attribute is an async handler."""

    def __getattr__(self, name: str) -> Any:
        async def handle(event: Any) -> None:
            raise AssertionError("never called: only the topology is read")

        handle.__doc__ = name
        return handle


@pytest.mark.parametrize("service", sorted(SUBSCRIPTIONS))
def test_service_queues_match_the_topology_table(service: str) -> None:
    module, _, name = SETTINGS[service].partition(":")
    settings = getattr(importlib.import_module(module), name)()
    entrypoints = importlib.import_module(f"domainflow.{service}.entrypoints")
    _, queues = entrypoints.build_router(_AnyHandler(), settings)
    assert sorted(q.name for q in queues) == sorted(
        queue_name(service, t) for t in SUBSCRIPTIONS[service]
    )
