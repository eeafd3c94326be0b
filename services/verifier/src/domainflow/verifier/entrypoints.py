"""The verifier's subscriptions: verify requests, status changes, deletions."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DomainDeleted, DomainStatusChanged, VerifyRequested
from domainflow.kit.messaging import subscribe
from domainflow.verifier.handlers import CONSUMER, VerifierHandlers
from domainflow.verifier.settings import VerifierSettings


def build_router(
    handlers: VerifierHandlers, settings: VerifierSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    limit, backoff = settings.delivery_limit, settings.redelivery_backoff_max
    queues = [
        subscribe(
            router,
            CONSUMER,
            VerifyRequested,
            handlers.on_verify_requested,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
        subscribe(
            router,
            CONSUMER,
            DomainStatusChanged,
            handlers.on_status_changed,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
        subscribe(
            router,
            CONSUMER,
            DomainDeleted,
            handlers.on_domain_deleted,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
    ]
    return router, queues
