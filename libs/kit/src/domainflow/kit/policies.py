"""RabbitMQ policies: the limits of each service's queues, set the operator's way.

Queue arguments are fixed at declaration (a different value later fails start-up with
PRECONDITION_FAILED); a policy is changed in place. So the delivery limit, the length
limits and the dead-letter strategy live in two policies per consuming service, put by
each replica at start-up through the management HTTP API:

- `domainflow-<service>`: its work queues (`<service>.<event>`): delivery limit,
  `at-least-once` dead-lettering (a parked message is never lost on the way to its DLQ),
  which needs `overflow: reject-publish` (a full queue refuses new events, and the
  outbox keeps them, rather than dropping the oldest);
- `domainflow-<service>-dlq`: its DLQs, bounded the same way.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from domainflow.kit.settings import ServiceSettings

#: Above a default policy an operator may have for every queue, below one they add on purpose.
PRIORITY = 10


@dataclass(frozen=True)
class QueueLimits:
    #: Deliveries of a failing message before it is parked in `<queue>.dlq`.
    delivery_limit: int = 5
    #: Messages a work queue holds before it refuses more (the outbox keeps them meanwhile).
    max_length: int = 1_000_000
    #: Messages a DLQ holds before it refuses more (they then stay in their work queue).
    dead_letter_max_length: int = 1_000_000

    @classmethod
    def of(cls, settings: ServiceSettings) -> QueueLimits:
        return cls(
            delivery_limit=settings.redelivery.delivery_limit,
            max_length=settings.broker.queue_max_length,
            dead_letter_max_length=settings.broker.dead_letter_max_length,
        )


@dataclass(frozen=True)
class Policy:
    name: str
    pattern: str
    definition: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "definition": self.definition,
            "priority": PRIORITY,
            "apply-to": "queues",
        }


def consumer_policies(consumer: str, limits: QueueLimits) -> list[Policy]:
    """The two policies of one consuming service (queue names never hold a dot after the
    consumer's, so `.dlq` tells the two kinds apart)."""
    prefix = re.escape(consumer)
    return [
        Policy(
            f"domainflow-{consumer}",
            rf"^{prefix}\.[^.]+$",
            {
                "delivery-limit": limits.delivery_limit,
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
                "max-length": limits.max_length,
            },
        ),
        Policy(
            f"domainflow-{consumer}-dlq",
            rf"^{prefix}\.[^.]+\.dlq$",
            {"overflow": "reject-publish", "max-length": limits.dead_letter_max_length},
        ),
    ]


@dataclass(frozen=True)
class ManagementApi:
    """Where RabbitMQ's management HTTP API is, for the vhost of an AMQP URL."""

    base_url: str
    vhost: str
    user: str
    password: str

    @classmethod
    def for_amqp(cls, amqp_url: str, management_url: str = "") -> ManagementApi:
        """The AMQP URL's credentials and vhost; the API on its host at port 15672 (for a node
        on another AMQP port than 5672, that port + 10000: deploy/rabbitmq-cluster.sh) unless
        `management_url` says otherwise."""
        amqp = urlsplit(amqp_url)
        vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
        scheme = "https" if amqp.scheme == "amqps" else "http"
        port = 15672 if amqp.port in (None, 5672, 5671) else amqp.port + 10000
        base = management_url.rstrip("/") or f"{scheme}://{amqp.hostname or '127.0.0.1'}:{port}"
        return cls(base, vhost, unquote(amqp.username or "guest"), unquote(amqp.password or ""))

    def url(self, *parts: str) -> str:
        return "/".join([self.base_url, "api", *(quote(p, safe="") for p in parts)])

    def session(self) -> aiohttp.ClientSession:
        credentials = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return aiohttp.ClientSession(
            headers={"Authorization": f"Basic {credentials}"},
            timeout=aiohttp.ClientTimeout(total=10),
        )


class PolicyRefusedError(RuntimeError):
    """The management API said no (wrong credentials, no `policymaker` tag, bad value)."""


async def apply_policies(api: ManagementApi, policies: list[Policy]) -> None:
    """Put each policy (create or replace); RabbitMQ applies it to matching queues at once."""
    async with api.session() as session:
        for policy in policies:
            async with session.put(
                api.url("policies", api.vhost, policy.name), json=policy.body()
            ) as answer:
                if answer.status >= 300:
                    raise PolicyRefusedError(
                        f"RabbitMQ refused policy {policy.name}: {answer.status}"
                        f" {await answer.text()}"
                    )


async def effective_policy(api: ManagementApi, queue: str) -> dict[str, Any]:
    """What RabbitMQ applies to `queue` now (`effective_policy_definition`)."""
    async with (
        api.session() as session,
        session.get(api.url("queues", api.vhost, queue)) as answer,
    ):
        answer.raise_for_status()
        found: dict[str, Any] = await answer.json()
        definition: dict[str, Any] = found.get("effective_policy_definition") or {}
        return definition
