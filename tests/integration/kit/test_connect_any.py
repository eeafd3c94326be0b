"""A one-off tool reaches RabbitMQ through whichever listed node answers."""

from __future__ import annotations

import pytest

from domainflow.kit import dead_letters
from domainflow.kit.failover import connect_any
from domainflow.sandbox.ports import listening_port

pytestmark = pytest.mark.integration


async def test_a_dead_first_node_is_passed_over(amqp_url: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{listening_port()}/"
    connection = await connect_any([dead, amqp_url], per_node=5)
    try:
        assert not connection.is_closed
    finally:
        await connection.close()
    # dead-letters and doctor count parked messages the same way.
    assert all(p.parked in (None, 0) for p in await dead_letters.parked([dead, amqp_url]))


async def test_no_node_answering_is_the_last_nodes_error() -> None:
    dead = [f"amqp://guest:guest@127.0.0.1:{listening_port()}/" for _ in range(2)]
    with pytest.raises(ConnectionError):
        await connect_any(dead, per_node=5)
