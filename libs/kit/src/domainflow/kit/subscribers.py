"""Platform teams as RabbitMQ subscribers: a read-only user, a queue of its own, public events only.

A subscriber `billing` gets the user `subscriber-billing` and the queue `subscriber.billing`,
bound to every public event (`PUBLIC_EVENTS`). RabbitMQ itself enforces the rest:

- it may configure nothing, and write to no exchange, so it cannot publish anything at
  all (a forged `domain.verification_completed` is refused with ACCESS_REFUSED);
- it may read the events exchange only through bindings whose routing key is public
  (topic permissions), and read only its own queue;
- its queue is bounded by the `domainflow-subscribers` policy with `overflow: drop-head`:
  a subscriber that stops reading loses its oldest events (and resyncs from the REST API)
  rather than making RabbitMQ refuse domainflow's own publishes.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import aio_pika

from domainflow.contracts.topology import EVENTS_EXCHANGE, PUBLIC_EVENTS, subscriber_queue_name
from domainflow.kit.policies import PRIORITY, ManagementApi, PolicyRefusedError

NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


class SubscriberNameError(ValueError):
    """Not a name a user and a queue can carry."""


@dataclass(frozen=True)
class Subscriber:
    name: str
    user: str
    password: str
    queue: str


def subscriber_user(name: str) -> str:
    return f"subscriber-{name}"


def permissions(name: str) -> dict[str, str]:
    """Configure nothing, write only its queue (which a binding needs; publishing needs write
    on an exchange, and it has none), read the events exchange and its queue."""
    queue = re.escape(subscriber_queue_name(name))
    return {
        "configure": "^$",
        "write": f"^{queue}$",
        "read": f"^({re.escape(EVENTS_EXCHANGE)}|{queue})$",
    }


def topic_permissions() -> dict[str, str]:
    public = "|".join(re.escape(t) for t in PUBLIC_EVENTS)
    return {"exchange": EVENTS_EXCHANGE, "write": "^$", "read": f"^({public})$"}


def queue_policy(max_length: int) -> dict[str, Any]:
    return {
        "pattern": r"^subscriber\.",
        "definition": {"max-length": max_length, "overflow": "drop-head"},
        "priority": PRIORITY,
        "apply-to": "queues",
    }


async def _put(api: ManagementApi, body: dict[str, Any], *path: str) -> None:
    async with api.session() as session, session.put(api.url(*path), json=body) as answer:
        if answer.status >= 300:
            raise PolicyRefusedError(
                f"RabbitMQ refused {'/'.join(path)}: {answer.status} {await answer.text()}"
            )


async def add_subscriber(
    amqp_url: str,
    name: str,
    *,
    management_url: str = "",
    max_length: int = 100_000,
    password: str | None = None,
) -> Subscriber:
    """Create (or update) the subscriber's user, permissions and queue; returns its login."""
    if not NAME.fullmatch(name):
        raise SubscriberNameError(
            f"{name!r}: a subscriber's name is 1-40 lower-case letters, digits or hyphens,"
            " starting with a letter"
        )
    api = ManagementApi.for_amqp(amqp_url, management_url)
    user, queue = subscriber_user(name), subscriber_queue_name(name)
    secret = password or secrets.token_urlsafe(24)
    await _put(api, {"password": secret, "tags": ""}, "users", user)
    await _put(api, permissions(name), "permissions", api.vhost, user)
    await _put(api, topic_permissions(), "topic-permissions", api.vhost, user)
    await _put(api, queue_policy(max_length), "policies", api.vhost, "domainflow-subscribers")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, "topic", durable=True)
        declared = await channel.declare_queue(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for event_type in PUBLIC_EVENTS:
            await declared.bind(exchange, routing_key=event_type)
    return Subscriber(name, user, secret, queue)
