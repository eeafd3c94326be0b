"""The verifier's subscriptions (the table in `contracts/topology.py`): verify requests,
claim checks, status changes, deletions."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import (
    ClaimRequested,
    DomainDeleted,
    DomainStatusChanged,
    VerifyRequested,
)
from domainflow.kit.messaging import Redelivery, subscribe_all
from domainflow.verifier.handlers import CONSUMER, VerifierHandlers
from domainflow.verifier.settings import VerifierSettings


def build_router(
    handlers: VerifierHandlers, settings: VerifierSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    queues = subscribe_all(
        router,
        CONSUMER,
        {
            VerifyRequested.TYPE: handlers.on_verify_requested,
            ClaimRequested.TYPE: handlers.on_claim_requested,
            DomainStatusChanged.TYPE: handlers.on_status_changed,
            DomainDeleted.TYPE: handlers.on_domain_deleted,
        },
        redelivery=Redelivery.of(settings),
    )
    return router, queues
