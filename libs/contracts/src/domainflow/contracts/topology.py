"""Where events travel: the exchanges, routing keys and queue-naming rule every service shares.

Ops staff read these names in RabbitMQ's management UI, so they say who consumes what:
`<consumer>.<event>` for a work queue and `<consumer>.<event>.dlq` for its dead letters.
"""

from typing import Final

#: Topic exchange carrying every domain event; the routing key is the event's `type`.
EVENTS_EXCHANGE: Final = "domainflow.events"
#: Direct exchange receiving messages a consumer gave up on; routed by queue name.
DEAD_LETTER_EXCHANGE: Final = "domainflow.dead-letter"


def queue_name(consumer: str, event_type: str) -> str:
    """`provisioner` + `domain.requested` -> `provisioner.domain-requested`."""
    return f"{consumer}.{event_type.replace('_', '-').replace('.', '-')}"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


#: Who consumes what. Each service subscribes to exactly these (a test checks it), and the
#: AsyncAPI document is generated from this table and the event models.
SUBSCRIPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "api": (
        "domain.provisioned",
        "domain.provisioning_rolled_back",
        "domain.needs_operator",
        "domain.verification_completed",
        "domain.claim_checked",
        "domain.deprovisioned",
    ),
    "provisioner": (
        "domain.requested",
        "domain.receiving_requested",
        "domain.deletion_requested",
    ),
    "verifier": (
        "domain.verify_requested",
        "domain.claim_requested",
        "domain.status_changed",
        "domain.deleted",
    ),
    "notifier": ("notification.requested",),
}

#: Queues an earlier release consumed and this one does not. A bound queue nobody reads fills
#: to its length limit and then, under `reject-publish`, refuses every event routed to it,
#: so the publisher's too: each consumer deletes its own once no replica of the earlier
#: release reads it any more, and its dead-letter queue once an operator has emptied it.
RETIRED_QUEUES: Final[dict[str, tuple[str, ...]]] = {
    # Before status_changed version 2, the notifier read every change for the owners in it.
    "notifier": ("notifier.domain-status-changed",),
}

#: Who publishes what.
PUBLICATIONS: Final[dict[str, tuple[str, ...]]] = {
    "api": (
        "domain.created",
        "domain.requested",
        "domain.receiving_requested",
        "domain.verify_requested",
        "domain.claim_requested",
        "domain.deletion_requested",
        "domain.status_changed",
        "domain.checks_failed",
        "domain.deleted",
        "notification.requested",
    ),
    "provisioner": (
        "domain.provisioned",
        "domain.provisioning_rolled_back",
        "domain.needs_operator",
        "domain.deprovisioned",
    ),
    "verifier": ("domain.verification_completed", "domain.claim_checked"),
    "notifier": ("notification.sent",),
}

#: What a subscriber outside domainflow may read: the domain's life as the REST API shows
#: it. Everything else on the exchange is one service asking another (a command, or its
#: answer): internal, and never publishable by a subscriber (see `kit/subscribers.py`).
PUBLIC_EVENTS: Final[tuple[str, ...]] = (
    "domain.created",
    "domain.status_changed",
    "domain.checks_failed",
    "domain.deleted",
    "notification.sent",
)


def subscriber_queue_name(subscriber: str) -> str:
    """A platform team's own queue: `subscriber.<name>`."""
    return f"subscriber.{subscriber}"
