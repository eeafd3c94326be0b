"""A replica's broker goes round the cluster's nodes: each connection attempt takes the next."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from domainflow.kit.failover import ClusterNodes, FailoverConnection
from domainflow.kit.messaging import QUORUM_REPLICAS, Redelivery, broker_for, consumer_queue
from domainflow.kit.settings import BrokerSettings, ServiceSettings

NODES = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5681, 5682, 5683)]


@given(start=st.integers(0, 50), attempts=st.integers(1, 30))
def test_attempts_go_round_every_node_in_turn(start: int, attempts: int) -> None:
    nodes = ClusterNodes(NODES, start=start)
    taken = [nodes.take() for _ in range(attempts)]
    for i, url in enumerate(taken):
        assert url == URL(NODES[(start + i) % len(NODES)])
    # No node is skipped: any three attempts in a row reach all three.
    if attempts >= 3:
        assert set(taken[:3]) == {URL(u) for u in NODES}


def test_no_node_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ClusterNodes([])


async def test_each_connection_attempt_reads_the_next_node_and_logs_without_a_turn() -> None:
    nodes = ClusterNodes(NODES, start=0)
    connection = FailoverConnection(URL(NODES[0]), loop=asyncio.get_running_loop(), nodes=nodes)
    assert str(connection) == "amqp://guest:******@127.0.0.1:5681/"
    assert [connection.url.port for _ in range(4)] == [5681, 5682, 5683, 5681]
    # A new secret reaches every node (aio-pika's update_secret sets the URL).
    connection.url = URL(NODES[1]).with_password("rotated")
    assert {u.password for u in nodes.urls} == {"rotated"}


def test_one_url_keeps_aio_pikas_own_connection_and_a_list_fails_over() -> None:
    single = broker_for(NODES[0], prefetch=1)
    assert "connection_class" not in single._connection_kwargs
    cluster = broker_for(NODES, prefetch=1)
    assert cluster._connection_kwargs["connection_class"].func is FailoverConnection


def test_settings_take_a_node_list_and_the_single_url_stays_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOMAINFLOW_AMQP_URL", NODES[2])
    assert ServiceSettings().broker.urls == [NODES[2]]
    monkeypatch.setenv("DOMAINFLOW_AMQP_URLS", '["' + '","'.join(NODES) + '"]')
    assert ServiceSettings().broker.urls == NODES


def test_queues_ask_for_three_copies_unless_told_otherwise() -> None:
    queue = consumer_queue(
        "verifier",
        "domain.created",
        replicas=Redelivery.of(ServiceSettings()).replicas,
    )
    assert (queue.arguments or {})[QUORUM_REPLICAS] == 3
    bare = consumer_queue("verifier", "domain.created")
    assert QUORUM_REPLICAS not in (bare.arguments or {})


def test_zero_replicas_declares_queues_as_before_the_setting() -> None:
    """Queues declared without the argument are refused if redeclared with it: `0` keeps
    an existing install starting."""
    replicas = Redelivery.of(ServiceSettings(broker=BrokerSettings(quorum_replicas=0))).replicas
    queue = consumer_queue("verifier", "domain.created", replicas=replicas)
    assert QUORUM_REPLICAS not in (queue.arguments or {})
