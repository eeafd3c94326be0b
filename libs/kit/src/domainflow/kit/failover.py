"""RabbitMQ connections that go round a cluster's nodes: each attempt, first or after a
lost connection, is made to the next node, so a replica outlives any one node.

aio-pika's robust connection reconnects to the one URL it was given, for ever if that node
is gone; FastStream hands its broker one URL. The node list is shared by every connection a
broker makes, so a broker that gave up on a dead node and connects again starts at the next.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from typing import Any

import aio_pika
from aio_pika import RobustConnection
from aio_pika.abc import AbstractConnection
from faststream.rabbit import RabbitBroker
from yarl import URL

#: One node's AMQP URL, or a cluster's.
Nodes = str | Sequence[str]


def node_list(nodes: Nodes) -> list[str]:
    return [nodes] if isinstance(nodes, str) else list(nodes)


async def connect_any(nodes: Nodes, *, per_node: float | None = None) -> AbstractConnection:
    """A plain connection to the first node that accepts one (for one-off tools: `doctor`,
    `dead-letters`); the last node's error when none does."""
    urls = node_list(nodes)
    if not urls:
        raise ValueError("a RabbitMQ cluster needs at least one node's URL")
    for url in urls[:-1]:
        try:
            return await aio_pika.connect(url, timeout=per_node)
        except (OSError, aio_pika.exceptions.AMQPConnectionError, TimeoutError):
            continue
    return await aio_pika.connect(urls[-1], timeout=per_node)


class ClusterNodes:
    """The AMQP URLs of a cluster's nodes and whose turn it is."""

    def __init__(self, urls: Sequence[str], *, start: int | None = None) -> None:
        if not urls:
            raise ValueError("a RabbitMQ cluster needs at least one node's URL")
        self.urls = [URL(url) for url in urls]
        # Replicas begin at different nodes, so their connections spread over the cluster.
        self._turn = random.randrange(len(self.urls)) if start is None else start

    @property
    def current(self) -> URL:
        return self.urls[self._turn % len(self.urls)]

    def take(self) -> URL:
        """The node for a connection attempt; the next attempt goes to the one after it."""
        url = self.current
        self._turn += 1
        return url


class FailoverConnection(RobustConnection):
    """A robust connection whose every attempt takes the next of `nodes`.

    aio-pika reads `url` once per connection attempt (to open the transport), which is what
    makes this work; `__str__`, which its logs use, reads the node without taking a turn.
    """

    def __init__(self, url: URL, *args: Any, nodes: ClusterNodes, **kwargs: Any) -> None:
        self._nodes = nodes
        self._built = False  # the constructor reads `url` for its query: no turn taken
        super().__init__(url, *args, **kwargs)
        self._built = True

    @property
    def url(self) -> URL:
        return self._nodes.take() if self._built else self._nodes.current

    @url.setter
    def url(self, value: URL) -> None:
        # aio-pika sets the URL it was built with (the first node's, already listed) and,
        # on `update_secret`, the same URL with a new password: that goes to every node.
        if value.password is not None and value.password != self._nodes.current.password:
            self._nodes.urls = [node.with_password(value.password) for node in self._nodes.urls]

    def __str__(self) -> str:
        current = self._nodes.current
        return str(current.with_password("******") if current.password else current)


def fail_over(broker: RabbitBroker, urls: Sequence[str]) -> RabbitBroker:
    """Make `broker` connect to whichever of `urls` answers, and move on when it goes away."""
    if len(urls) > 1:
        nodes = ClusterNodes(urls)
        # FastStream passes these to `aio_pika.connect_robust`, which builds the connection
        # from `connection_class`; its constructor has no other way in.
        broker._connection_kwargs["connection_class"] = partial(FailoverConnection, nodes=nodes)
    return broker
