"""The verifier's subscriptions: verify requests, status changes, deletions."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DomainDeleted, DomainStatusChanged, VerifyRequested
from domainflow.kit.messaging import Redelivery, subscribe
from domainflow.verifier.handlers import CONSUMER, VerifierHandlers
from domainflow.verifier.settings import VerifierSettings


def build_router(
    handlers: VerifierHandlers, settings: VerifierSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    redelivery = Redelivery.of(settings)
    queues = [
        subscribe(
            router,
            CONSUMER,
            VerifyRequested,
            handlers.on_verify_requested,
            redelivery=redelivery,
        ),
        subscribe(
            router,
            CONSUMER,
            DomainStatusChanged,
            handlers.on_status_changed,
            redelivery=redelivery,
        ),
        subscribe(
            router,
            CONSUMER,
            DomainDeleted,
            handlers.on_domain_deleted,
            redelivery=redelivery,
        ),
    ]
    return router, queues
